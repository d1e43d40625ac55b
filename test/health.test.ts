/**
 * /healthz and /readyz, and what a Redis outage does: readiness goes 503 with a JSON reason, the
 * process keeps running, and everything comes back when Redis does. The outage tests run their
 * own redis-server on a free port (the shared one is never stopped).
 */
import { expect } from "chai";
import { ticketRoom } from "../src/protocol.js";
import { collect, connect, eventually, request } from "./support/client.js";
import { clusterEnv, randomPrefix, startCluster, type ClusterMode } from "./support/cluster.js";
import { createTestDatabase } from "./support/db.js";
import { spawnGateway } from "./support/process.js";
import { startRedisServer } from "./support/redis-server.js";

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("health and readiness", () => {
  for (const mode of ["classic", "single"] as ClusterMode[]) {
    it(`answers /healthz 200 and /readyz 200 when its dependencies are up (${mode})`, async () => {
      const { urls } = await startCluster(1, { mode });
      expect(await get(`${urls[0]}/healthz`)).to.deep.equal({ status: 200, body: { status: "ok" } });
      expect(await get(`${urls[0]}/readyz`)).to.deep.equal({ status: 200, body: { status: "ready" } });
    });
  }

  it("goes unready (503, JSON reason) while its Redis is down, without crashing, and ready again after", async function () {
    this.timeout(60_000);
    const redis = await startRedisServer();
    const databaseUrl = await createTestDatabase();
    const proc = await spawnGateway(clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), redisUrl: redis.url }));
    expect((await get(`${proc.url}/readyz`)).status).to.equal(200);
    const socket = await connect(proc.url, { sub: "agent", reconnection: true });

    await redis.stop();
    let unready: Awaited<ReturnType<typeof get>> | undefined;
    await eventually(async () => (unready = await get(`${proc.url}/readyz`)).status === 503, "/readyz to answer 503", 15_000, 100);
    expect(unready!.body.status).to.equal("unavailable");
    expect(unready!.body.reason).to.be.a("string").and.match(/redis/);
    expect((await get(`${proc.url}/healthz`)).status, "liveness must not follow Redis").to.equal(200);
    // client events during the outage are answered (ok or an error ack), never left hanging
    const ack = await request(socket, "ticket:subscribe", { ticketId: "1" }, 10_000);
    expect(ack.ok === true || ["UNAVAILABLE"].includes(ack.error.code), JSON.stringify(ack)).to.equal(true);

    await redis.start();
    await eventually(async () => (await get(`${proc.url}/readyz`)).status === 200, "/readyz back to 200", 20_000, 100);
    expect(proc.child.exitCode, proc.output.slice(-5).join("\n")).to.equal(null);
    expect(await request(socket, "ticket:subscribe", { ticketId: "2" })).to.include({ ok: true, ticketId: "2" });
  });

  for (const mode of ["classic", "sharded"] as ClusterMode[]) {
    it(`delivers across instances again after a Redis restart (${mode})`, async function () {
      this.timeout(60_000);
      const redis = await startRedisServer();
      const cluster = await startCluster(2, { mode, redisUrl: redis.url });
      const subscriber = await connect(cluster.urls[1]!, { sub: "b" });
      await request(subscriber, "ticket:subscribe", { ticketId: "42" });
      const received = collect(subscriber, "ticket:update");

      await redis.stop();
      await eventually(async () => (await get(`${cluster.urls[0]}/readyz`)).status === 503, "instance 0 unready", 15_000, 100);
      await redis.start();
      await eventually(
        async () => (await Promise.all(cluster.urls.map((url) => get(`${url}/readyz`)))).every((r) => r.status === 200),
        "both instances ready again",
        20_000,
        100,
      );
      // the subscription of instance 1 to the room must be back: emit until one arrives
      let seq = 0;
      await eventually(() => {
        cluster.gateways[0]!.io.to(ticketRoom("42")).emit("ticket:update", { ticketId: "42", seq: ++seq, id: String(seq), type: "t", data: {}, at: new Date().toISOString() });
        return received.length > 0;
      }, "a cross-instance update after the restart", 10_000, 200);
    });
  }
});
