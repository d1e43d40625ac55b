/**
 * Graceful drain of a real gateway process on SIGTERM, behind a tiny TCP load balancer that, like a
 * Kubernetes Service, sends each new connection to a backend whose /readyz answers 200.
 * Stock socket.io-client sockets (default reconnection settings) must end up on the other instance.
 */
import { request as httpRequest } from "node:http";
import { expect } from "chai";
import { connect, connectError, createSocket, eventually, request, token, type TestSocket } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase } from "./support/db.js";
import { spawnGateway, waitExit, type GatewayProcess } from "./support/process.js";
import { readyRoundRobin, startProxy } from "./support/tcp-proxy.js";

const GRACE_MS = 3000;
const CLIENTS = 20;

interface Readiness {
  status: number;
  body: { status?: string; reason?: string };
}

/** GET /readyz; a refused or hung connection is "not ready" (status 0). */
function readyz(port: number, timeoutMs = 3000): Promise<Readiness> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/readyz", timeout: timeoutMs, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Readiness["body"] });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: {} });
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, body: {} }));
    req.end();
  });
}

/** Round-robin over the backends whose /readyz is 200 at the moment a connection arrives. */
const startBalancer = (backends: number[]) => startProxy(readyRoundRobin(() => backends));

/** Gateway processes sharing one database and one Redis prefix: one cluster. */
async function instances(n: number, grace = GRACE_MS): Promise<GatewayProcess[]> {
  const databaseUrl = await createTestDatabase();
  const prefix = randomPrefix();
  const env = (id: string) => clusterEnv({ mode: "classic", databaseUrl, prefix, env: { SHUTDOWN_GRACE_MS: String(grace), INSTANCE_ID: id } });
  return Promise.all(Array.from({ length: n }, (_, i) => spawnGateway(env(`drain-${i}`))));
}

describe("graceful drain (child processes)", function () {
  this.timeout(60_000);

  it("moves every client of a SIGTERMed instance to the other one, then exits 0 within the grace period", async () => {
    const [a, b] = await instances(2);
    const lb = await startBalancer([a!.port, b!.port]);
    const jwt = await token({ sub: "agent" });
    const clients: TestSocket[] = [];
    const reasons: string[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      // a stock client: default reconnection settings, websocket transport
      const socket = createSocket(lb.url, { token: jwt, reconnection: true });
      const seen: string[] = [];
      socket.on("disconnect", (reason) => seen.push(reason));
      reasons.push(seen);
      clients.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
        socket.connect();
      });
    }
    expect(lb.open.get(a!.port)!.size, "clients on instance a").to.equal(CLIENTS / 2);
    expect(lb.open.get(b!.port)!.size, "clients on instance b").to.equal(CLIENTS / 2);

    const killedAt = Date.now();
    a!.kill("SIGTERM");
    const exited = a!.exited.then((code) => ({ code, ms: Date.now() - killedAt }));

    // during the drain: not ready, and new handshakes are refused with SHUTTING_DOWN
    let draining: Readiness | undefined;
    await eventually(async () => {
      draining = await readyz(a!.port);
      return draining.status === 503;
    }, "instance a to answer /readyz with 503", 10_000);
    expect(draining!.body).to.deep.equal({ status: "unavailable", reason: "draining" });
    const refused = await connectError(a!.url, { token: jwt });
    expect(refused.data).to.deep.equal({ code: "SHUTTING_DOWN", status: 503 });
    expect((await readyz(b!.port)).status, "instance b stays ready").to.equal(200);

    const { code, ms } = await exited;
    expect(code, a!.output.slice(-5).join("\n")).to.equal(0);
    expect(ms, "exit within SHUTDOWN_GRACE_MS").to.be.below(GRACE_MS);

    // every client is back, on b, by itself; the drained ones saw a transport close (so they retried)
    await eventually(() => clients.every((socket) => socket.connected), "every client to reconnect", 20_000);
    expect(lb.open.get(a!.port)!.size).to.equal(0);
    expect(lb.open.get(b!.port)!.size).to.equal(CLIENTS);
    const drained = reasons.filter((seen) => seen.length > 0);
    expect(drained).to.have.length(CLIENTS / 2);
    for (const seen of drained) expect(seen).to.deep.equal(["transport close"]);
    for (const socket of clients) {
      expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true, ticketId: "1" });
    }
  });

  it("forces the exit on a second SIGTERM (exit code 1) instead of waiting out the drain", async () => {
    const [a] = await instances(1, 30_000);
    // a long grace spreads these closes over 15s, so the drain is still running at the second signal
    for (let i = 0; i < 5; i++) await connect(a!.url, { sub: `stuck-${i}` });
    const killedAt = Date.now();
    a!.kill("SIGTERM");
    await eventually(async () => (await readyz(a!.port)).status === 503, "the drain to start", 10_000);
    a!.kill("SIGTERM");
    const code = await waitExit(a!, 10_000);
    expect(code).to.equal(1);
    expect(Date.now() - killedAt).to.be.below(10_000);
    expect(a!.output.some((line) => line.includes("second signal: forcing exit"))).to.equal(true);
  });
});
