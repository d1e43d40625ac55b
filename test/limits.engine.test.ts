/**
 * Caps count every Engine.IO session, joined or not: raw WebSocket and long-polling sessions that
 * never send the Socket.IO CONNECT, against gateways in their own processes.
 */
import { expect } from "chai";
import { REFUSALS_PER_IP } from "../src/limits/engine-admission.js";
import { connect, connectError, eventually, token } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase } from "./support/db.js";
import { sample, scrape } from "./support/metrics.js";
import { spawnGateway, type GatewayProcess } from "./support/process.js";
import { connectErrorIn, poll, pollingHandshake, rawWebSocket, type RawWebSocket } from "./support/raw-engine.js";

const HANDSHAKE_TIMEOUT_MS = 4000;

async function gatewayWith(env: Record<string, string>): Promise<GatewayProcess> {
  const databaseUrl = await createTestDatabase();
  return spawnGateway(clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS), LOG_LEVEL: "warn", ...env } }));
}

async function metric(gateway: GatewayProcess, name: string): Promise<number | undefined> {
  return sample(await scrape(gateway.metricsPort), name);
}

/** Run `n` tasks with at most `width` in flight (200 handshakes at once would measure the test machine). */
async function inBatches<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < n; i += width) results.push(...(await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, j) => task(i + j)))));
  return results;
}

describe("engine-level connection accounting", () => {
  it("200 raw WebSocket sessions from one IP that never send CONNECT: at most MAX_CONNECTIONS_PER_IP=5 stay open; after they time out a normal client connects", async function () {
    this.timeout(90_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS_PER_IP: "5" });
    const outcomes = await inBatches(200, 40, () => rawWebSocket(gateway.url));
    const opened = outcomes.flatMap((o) => (o.kind === "open" ? [o.ws] : []));
    const refusedHttp = outcomes.flatMap((o) => (o.kind === "refused" ? [o] : []));
    for (const refusal of refusedHttp) {
      expect(refusal.status).to.equal(429);
      expect(JSON.parse(refusal.body)).to.include({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    }
    // every session beyond the cap that got to open was told why at once, and the server closed it
    const told = (ws: RawWebSocket) => connectErrorIn(ws.messages) !== undefined;
    // on a loaded machine the refusals arrive over a while: wait until all but the cap's worth have theirs
    await eventually(() => opened.filter((ws) => !told(ws)).length <= 5, "every session beyond the cap to be told why", 20_000);
    await eventually(() => opened.filter(told).every((ws) => !ws.isOpen()), "the refused sessions to be closed by the server");
    for (const ws of opened.filter(told)) expect(connectErrorIn(ws.messages)).to.deep.equal({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    const held = opened.filter((ws) => !told(ws));
    expect(held, `${opened.length} opened, ${refusedHttp.length} refused over HTTP`).to.have.length(5);
    expect(held.every((ws) => ws.isOpen())).to.equal(true);
    expect(await metric(gateway, "gateway_engine_sessions")).to.equal(5);
    expect(await metric(gateway, "gateway_connections")).to.equal(0);
    expect(await metric(gateway, "gateway_connections_rejected_total")).to.equal(195);
    // a real client from the same IP is told the code, not a transport error
    expect((await connectError(gateway.url, { token: await token() })).data).to.deep.equal({ code: "TOO_MANY_CONNECTIONS", status: 429 });

    // the sessions that never joined are closed after HANDSHAKE_TIMEOUT_MS, freeing their slots
    const started = Date.now();
    await Promise.all(held.map((ws) => ws.closed));
    expect(Date.now() - started).to.be.below(HANDSHAKE_TIMEOUT_MS + 5000);
    await eventually(async () => (await metric(gateway, "gateway_engine_sessions")) === 0, "the slots to be free");
    const socket = await connect(gateway.url);
    expect(socket.connected).to.equal(true);
  });

  it("200 long-polling sessions from one IP that never send CONNECT: 5 hold slots, the rest are refused; after they time out a normal client connects", async function () {
    this.timeout(90_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS_PER_IP: "5" });
    const results = await inBatches(200, 40, () => pollingHandshake(gateway.url));
    const refused = results.filter((r) => r.status !== 200);
    for (const r of refused) {
      expect(r.status).to.equal(429);
      expect(JSON.parse(r.body)).to.include({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    }
    expect(results.filter((r) => r.sid).length).to.equal(200 - refused.length);
    expect(await metric(gateway, "gateway_engine_sessions")).to.equal(5);
    expect(await metric(gateway, "gateway_connections")).to.equal(0);
    // refused sessions that opened are closed within a couple of seconds even if they never poll
    await eventually(async () => (await metric(gateway, "gateway_engine_refusals_in_flight")) === 0, "the refused sessions to close", 10_000, 100);
    // a stock client on long-polling from the same IP reads the code
    const error = await connectError(gateway.url, { token: await token(), transports: ["polling"] });
    expect(error.data).to.deep.equal({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    await eventually(async () => (await metric(gateway, "gateway_engine_sessions")) === 0, "the idle sessions to time out", HANDSHAKE_TIMEOUT_MS + 10_000, 100);
    const socket = await connect(gateway.url, { transports: ["polling"] });
    expect(socket.connected).to.equal(true);
  });

  it("a refused polling session is told its code on its next poll; a flood beyond the refusal budget gets plain HTTP 429", async function () {
    this.timeout(60_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS_PER_IP: "1", HANDSHAKE_TIMEOUT_MS: "30s" });
    const first = await pollingHandshake(gateway.url);
    expect(first.sid).to.be.a("string");
    const second = await pollingHandshake(gateway.url);
    expect(second.sid).to.be.a("string");
    const reply = await poll(gateway.url, second.sid!);
    expect(reply).to.not.equal("timeout");
    expect(connectErrorIn((reply as { packets: string[] }).packets)).to.deep.equal({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    // unpolled refused sessions linger up to 2 s; more than the budget at once are refused over HTTP
    const flood = await Promise.all(Array.from({ length: REFUSALS_PER_IP + 20 }, () => pollingHandshake(gateway.url)));
    const plain = flood.filter((r) => r.status === 429);
    expect(plain.length).to.be.at.least(1);
    expect(flood.filter((r) => r.status === 200).length).to.be.at.most(REFUSALS_PER_IP);
    for (const r of plain) expect(JSON.parse(r.body)).to.include({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    // while those refused sessions wait for their poll, a WebSocket upgrade from the IP is answered 429 too
    const upgrade = await rawWebSocket(gateway.url);
    expect(upgrade.kind).to.equal("refused");
    const refusal = upgrade as { status: number; body: string };
    expect(refusal.status).to.equal(429);
    expect(JSON.parse(refusal.body)).to.include({ code: "TOO_MANY_CONNECTIONS", status: 429 });
  });

  it("CONNECTION_RATE_PER_IP counts raw handshakes; a flood is refused with 429 and Retry-After", async function () {
    this.timeout(60_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS_PER_IP: "0", CONNECTION_RATE_PER_IP: "3/60s", HANDSHAKE_TIMEOUT_MS: "30s" });
    for (let i = 0; i < 3; i++) expect((await pollingHandshake(gateway.url)).sid).to.be.a("string");
    const error = await connectError(gateway.url, { token: await token() });
    expect(error.data).to.include({ code: "RATE_LIMITED", status: 429 });
    expect(error.data!.retryAfterMs).to.be.within(1, 60_000);
    const flood = await Promise.all(Array.from({ length: REFUSALS_PER_IP + 20 }, () => pollingHandshake(gateway.url)));
    const plain = flood.filter((r) => r.status === 429);
    expect(plain.length).to.be.at.least(1);
    for (const r of plain) {
      expect(JSON.parse(r.body)).to.include({ code: "RATE_LIMITED", status: 429 });
      expect(Number(r.retryAfter)).to.be.within(1, 60);
    }
  });

  it("MAX_CONNECTIONS counts sessions that never join: the next client gets SERVER_FULL", async function () {
    this.timeout(60_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS: "3", MAX_CONNECTIONS_PER_IP: "0" });
    const idle = await Promise.all([rawWebSocket(gateway.url), rawWebSocket(gateway.url), pollingHandshake(gateway.url)]);
    expect(idle.map((o) => ("kind" in o ? o.kind : o.status))).to.deep.equal(["open", "open", 200]);
    expect(await metric(gateway, "gateway_engine_sessions")).to.equal(3);
    expect((await connectError(gateway.url, { token: await token() })).data).to.deep.equal({ code: "SERVER_FULL", status: 503 });
    const raw = await rawWebSocket(gateway.url);
    expect(raw.kind).to.equal("open");
    await eventually(() => raw.kind === "open" && !raw.ws.isOpen(), "the refused raw session to be closed");
    expect(connectErrorIn((raw as { ws: RawWebSocket }).ws.messages)).to.deep.equal({ code: "SERVER_FULL", status: 503 });
    await eventually(async () => (await metric(gateway, "gateway_engine_sessions")) === 0, "the idle sessions to time out", HANDSHAKE_TIMEOUT_MS + 10_000, 100);
    expect((await connect(gateway.url)).connected).to.equal(true);
  });

  it("a session whose CONNECT the middleware refuses (bad token) gives its slot back at once and is closed", async function () {
    this.timeout(60_000);
    const gateway = await gatewayWith({ MAX_CONNECTIONS_PER_IP: "1", HANDSHAKE_TIMEOUT_MS: "30s" });
    const raw = await rawWebSocket(gateway.url);
    expect(raw.kind).to.equal("open");
    const ws = (raw as { ws: RawWebSocket }).ws;
    expect(await metric(gateway, "gateway_engine_sessions")).to.equal(1);
    ws.send('40{"token":"not-a-jwt"}');
    await ws.closed;
    expect(connectErrorIn(ws.messages)).to.deep.equal({ code: "UNAUTHORIZED", status: 401 });
    expect(await metric(gateway, "gateway_engine_sessions")).to.equal(0);
    // the one slot is free for a real client right away, not after a timeout
    expect((await connect(gateway.url)).connected).to.equal(true);
  });
});
