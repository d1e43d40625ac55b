/**
 * MAX_BUFFERED_BYTES_PER_SOCKET: a client that really stops reading (its TCP socket paused) is
 * dropped once its unsent output passes the limit; the instance's memory stays bounded and the
 * other subscribers of the same ticket get every event, in order.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { collect, connect, eventually, request, token } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase, sql } from "./support/db.js";
import { sample, scrape } from "./support/metrics.js";
import { spawnGateway } from "./support/process.js";
import { rawWebSocket, type RawWebSocket } from "./support/raw-engine.js";
import { createTicketClient, type TicketUpdate } from "../client/src/index.js";
import { onCleanup } from "./support/cleanup.js";
import { startCluster } from "./support/cluster.js";

const EVENTS = 3000;

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** A raw Engine.IO/Socket.IO client joined and subscribed to `ticketId`, speaking the wire protocol itself. */
async function rawSubscriber(url: string, ticketId: string): Promise<RawWebSocket> {
  const outcome = await rawWebSocket(url);
  if (outcome.kind !== "open") throw new Error(`refused: ${outcome.status}`);
  const ws = outcome.ws;
  // answer engine.io pings while reading, like any client
  ws.socket.on("message", (data) => {
    if (data.toString() === "2") ws.send("3");
  });
  ws.send(`40${JSON.stringify({ token: await token({ sub: "stalled" }) })}`);
  await eventually(() => ws.messages.some((m) => m.startsWith("40{")), "the raw client to join");
  ws.send(`421["ticket:subscribe",${JSON.stringify({ ticketId })}]`);
  await eventually(() => ws.messages.some((m) => m.startsWith("431[")), "the raw client's subscribe ack");
  expect(JSON.parse(ws.messages.find((m) => m.startsWith("431["))!.slice(3))[0]).to.include({ ok: true });
  return ws;
}

describe("slow consumers (MAX_BUFFERED_BYTES_PER_SOCKET)", () => {
  it("a subscriber that stops reading is disconnected with SLOW_CONSUMER while 3,000 events of 8 KB reach the others in order and RSS stays bounded", async function () {
    this.timeout(180_000);
    const databaseUrl = await createTestDatabase();
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { LOG_LEVEL: "warn" } });
    const gateway = await spawnGateway(env);
    const ticketId = "big";
    const stalled = await rawSubscriber(gateway.url, ticketId);
    const normal = await connect(gateway.url, { sub: "reader" });
    expect(await request(normal, "ticket:subscribe", { ticketId })).to.include({ ok: true });
    const updates = collect(normal, "ticket:update");
    // the stalled client stops reading: its kernel buffers fill, then the gateway's
    (stalled.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const before = rssBytes(gateway.child.pid!);

    await sql(
      databaseUrl,
      `SELECT realtime.publish_ticket_event($1, 'big', jsonb_build_object('n', i, 'pad', repeat('x', 8192)))
         FROM generate_series(1, ${EVENTS}) AS i`,
      [ticketId],
    );
    let peak = before;
    await eventually(
      () => {
        peak = Math.max(peak, rssBytes(gateway.child.pid!));
        return updates.length >= EVENTS;
      },
      `all ${EVENTS} events to reach the normal subscriber`,
      120_000,
      50,
    );
    expect(updates.map((u) => (u.data as { n: number }).n)).to.deep.equal(Array.from({ length: EVENTS }, (_, i) => i + 1));
    expect(updates.map((u) => u.seq)).to.deep.equal(Array.from({ length: EVENTS }, (_, i) => i + 1));
    expect(normal.connected).to.equal(true);

    // the stalled one is judged a second after its output passed the limit: wait for that verdict
    await eventually(
      async () => {
        peak = Math.max(peak, rssBytes(gateway.child.pid!));
        return sample(await scrape(gateway.metricsPort), "gateway_slow_consumer_disconnects_total") === 1;
      },
      "the stalled subscriber to be dropped",
      20_000,
      50,
    );
    const metrics = await scrape(gateway.metricsPort);
    expect(sample(metrics, "gateway_slow_consumer_disconnects_total")).to.equal(1);
    expect(sample(metrics, "gateway_connections")).to.equal(1);
    const grown = peak - before;
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.below(150 * 2 ** 20);
    console.log(`      RSS ${(before / 2 ** 20).toFixed(0)} → peak ${(peak / 2 ** 20).toFixed(0)} MiB while ${EVENTS} × 8 KB events went out`);

    // once it reads again, it finds the reason behind what was already buffered, then the close
    (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await stalled.closed;
    const error = stalled.messages.find((m) => m.startsWith('42["gateway:error"'));
    expect(error, "gateway:error after the buffered updates").to.be.a("string");
    expect(JSON.parse(error!.slice(2))[1]).to.deep.include({ event: "ticket:update" }).and.have.nested.property("error.code", "SLOW_CONSUMER");
    const received = stalled.messages.filter((m) => m.startsWith('42["ticket:update"')).length;
    expect(received, "the stalled client got only a prefix").to.be.below(EVENTS);
  });

  it("the package's client, dropped as a slow consumer, resumes from its last seq and ends with every event exactly once", async function () {
    this.timeout(120_000);
    const cluster = await startCluster(1);
    const gateway = cluster.gateways[0]!;
    const ticketId = "resume";
    const client = createTicketClient({ url: cluster.urls[0]!, token: await token({ sub: "phone" }), socketOptions: { transports: ["websocket"] }, reconnectMinDelayMs: 100, reconnectMaxDelayMs: 500 });
    onCleanup("ticket client", () => client.close());
    const updates: TicketUpdate[] = [];
    const errors: string[] = [];
    let subscribed = 0;
    client.on("error", (error) => errors.push(error.code));
    client.subscribe(ticketId, { onUpdate: (u) => updates.push(u), onSubscribed: () => (subscribed += 1) });
    await eventually(() => subscribed === 1, "the subscription");
    // the phone enters a tunnel: its TCP socket stops reading
    const tcp = (client.socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void; resume(): void } } }).ws._socket;
    tcp.pause();
    const n = 1000;
    await sql(cluster.databaseUrl, `SELECT realtime.publish_ticket_event($1, 'big', jsonb_build_object('n', i, 'pad', repeat('x', 8192))) FROM generate_series(1, ${n}) AS i`, [ticketId]);
    const drops = async () => (await gateway.metrics.slowConsumerDisconnects.get()).values[0]?.value ?? 0;
    await eventually(async () => (await drops()) === 1, "the paused client to be dropped", 60_000, 50);
    // out of the tunnel: it reads what was buffered, hears why, reconnects and resumes
    tcp.resume();
    await eventually(() => updates.length >= n, `all ${n} events at the client`, 60_000, 50);
    expect(updates.map((u) => u.seq)).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
    expect(subscribed, "resubscribed after the drop").to.be.at.least(2);
    expect(errors).to.include("SLOW_CONSUMER");
  });
});
