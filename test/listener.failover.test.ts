import { expect } from "chai";
import pg from "pg";
import { connect, eventually, request } from "./support/client.js";
import { clusterEnv, randomPrefix, startGateway } from "./support/cluster.js";
import { createTestDatabase, sql, waitSequenced } from "./support/db.js";
import { range, recordHistory } from "./support/history.js";
import { sample, scrape } from "./support/metrics.js";
import { spawnGateway, waitExit } from "./support/process.js";
import { forEachEventSource } from "./support/event-sources.js";

forEachEventSource(() => describe("listener failover", () => {
  it("exactly one listener leads; SIGKILL it mid-write and another takes over with every seq delivered exactly once", async function () {
    this.timeout(90_000);
    const databaseUrl = await createTestDatabase();
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() });
    // the first instance becomes the leader; the others are standbys
    const leader = await spawnGateway({ ...env, INSTANCE_ID: "leader" });
    await eventually(async () => sample(await scrape(leader.metricsPort), "gateway_listener_leader") === 1, "the first process to lead");
    const standby = await spawnGateway({ ...env, INSTANCE_ID: "standby" });
    const local = await startGateway({ ...env, INSTANCE_ID: "local" });
    const leaders = async () =>
      (sample(await scrape(standby.metricsPort), "gateway_listener_leader") ?? 0) + (await local.metrics.listenerLeader.get()).values[0]!.value;
    expect(await leaders()).to.equal(0);

    const tickets = ["f1", "f2"];
    const sockets = await Promise.all([connect(standby.url, { sub: "s1" }), connect(`http://127.0.0.1:${local.port}`, { sub: "s2" })]);
    for (const socket of sockets) for (const ticketId of tickets) await request(socket, "ticket:subscribe", { ticketId });
    const histories = sockets.map(recordHistory);

    let stop = false;
    const writers = Array.from({ length: 6 }, async (_, w) => {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        for (let n = 0; !stop; n++) {
          await client.query("SELECT realtime.publish_ticket_event($1, 'w', $2)", [tickets[(w + n) % 2], { w, n }]);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      } finally {
        await client.end();
      }
    });
    await eventually(() => histories.every((h) => (h.delivered.get("f1")?.length ?? 0) > 20), "some events before the kill");
    const killedAt = Date.now();
    leader.kill("SIGKILL");
    expect(await waitExit(leader)).to.equal("SIGKILL");
    await eventually(async () => (await leaders()) === 1, "a standby to take over", 15_000);
    const takeoverMs = Date.now() - killedAt;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    stop = true;
    await Promise.all(writers);
    await waitSequenced(databaseUrl); // seqs are assigned after commit

    const heads = new Map(
      (await sql<{ ticket_id: string; last_seq: string }>(databaseUrl, "SELECT ticket_id, last_seq FROM realtime.ticket_heads")).map((r) => [r.ticket_id, Number(r.last_seq)]),
    );
    await eventually(
      () => histories.every((h) => tickets.every((t) => (h.delivered.get(t)?.length ?? 0) >= heads.get(t)!)),
      "every committed event to reach every subscriber",
      20_000,
    );
    for (const history of histories) {
      for (const ticketId of tickets) expect(history.delivered.get(ticketId)).to.deep.equal(range(heads.get(ticketId)!));
      expect(history.outOfOrder).to.equal(0);
    }
    expect(takeoverMs).to.be.lessThan(15_000);
    expect(await leaders()).to.equal(1);
  });

  it("hands leadership over at once on a graceful stop", async () => {
    const databaseUrl = await createTestDatabase();
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() });
    const first = await startGateway({ ...env, INSTANCE_ID: "first" });
    await eventually(async () => (await first.metrics.listenerLeader.get()).values[0]!.value === 1, "the first instance to lead");
    const second = await startGateway({ ...env, INSTANCE_ID: "second" });
    const socket = await connect(`http://127.0.0.1:${second.port}`);
    await request(socket, "ticket:subscribe", { ticketId: "h" });
    const history = recordHistory(socket);
    await first.stop("test", { force: true });
    await sql(databaseUrl, "SELECT realtime.publish_ticket_event('h', 'x', '{}')");
    await eventually(() => history.delivered.get("h")?.length === 1, "delivery by the new leader", 5000);
    expect((await second.metrics.listenerLeader.get()).values[0]!.value).to.equal(1);
  });
}));
