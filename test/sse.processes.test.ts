/**
 * SSE across gateway processes behind a readiness-aware balancer, with the npm EventSource (which
 * reconnects by itself, sending Last-Event-ID): a killed or drained instance's streams resume on
 * the other one with exactly what they missed.
 */
import { expect } from "chai";
import type { EventSource } from "eventsource";
import { mintToken } from "../src/auth/jwt.js";
import { eventually } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase, sql } from "./support/db.js";
import { TEST_JWT_SECRET } from "./support/env.js";
import { range } from "./support/history.js";
import { spawnGateway, waitExit, type GatewayProcess } from "./support/process.js";
import { eventSource, openSse } from "./support/sse.js";
import { readyRoundRobin, startProxy, type TcpProxy } from "./support/tcp-proxy.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'sse', jsonb_build_object('i', i)) FROM generate_series(1, $2) AS i", [ticketId, count]);

interface Recorded {
  seqs: Map<string, number[]>;
  ids: string[];
  opens: number;
}

function record(es: EventSource): Recorded {
  const recorded: Recorded = { seqs: new Map(), ids: [], opens: 0 };
  es.addEventListener("open", () => (recorded.opens += 1));
  es.addEventListener("ticket:update", (event) => {
    const update = JSON.parse(event.data) as { ticketId: string; seq: number };
    const list = recorded.seqs.get(update.ticketId) ?? [];
    list.push(update.seq);
    recorded.seqs.set(update.ticketId, list);
    recorded.ids.push(event.lastEventId);
  });
  return recorded;
}

async function twoInstances(extra: Record<string, string> = {}): Promise<{ procs: GatewayProcess[]; proxy: TcpProxy; databaseUrl: string }> {
  const databaseUrl = await createTestDatabase();
  const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { RECONCILE_INTERVAL: "500ms", ...extra } });
  const procs = await Promise.all([spawnGateway({ ...env, INSTANCE_ID: "sse-a" }), spawnGateway({ ...env, INSTANCE_ID: "sse-b" })]);
  const proxy = await startProxy(readyRoundRobin(() => procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.port)));
  return { procs, proxy, databaseUrl };
}

/** The instance the balancer sent the stream to. */
function holder(proxy: TcpProxy, procs: GatewayProcess[]): GatewayProcess {
  const held = procs.filter((p) => (proxy.open.get(p.port)?.size ?? 0) > 0);
  expect(held, "exactly one instance holds the stream").to.have.length(1);
  return held[0]!;
}

describe("SSE across processes: kill and drain move streams, the cursor resumes them", () => {
  it("kill -9 the instance under an EventSource: it reconnects through the balancer with Last-Event-ID and gets exactly what it missed", async () => {
    const { procs, proxy, databaseUrl } = await twoInstances();
    const jwt = await mintToken(TEST_JWT_SECRET, { sub: "wallboard", tickets: ["K1", "K2"], ttlSeconds: 600 });
    const es = eventSource(`${proxy.url}/sse?tickets=K1,K2&access_token=${jwt}`);
    const seen = record(es);
    await eventually(() => seen.opens === 1, "the stream to open", 15_000);
    await publish(databaseUrl, "K1", 5);
    await publish(databaseUrl, "K2", 3);
    await eventually(() => seen.seqs.get("K1")?.length === 5 && seen.seqs.get("K2")?.length === 3, "the first updates");

    const victim = holder(proxy, procs);
    victim.kill("SIGKILL");
    await waitExit(victim);
    // committed while the stream is down
    await publish(databaseUrl, "K1", 20);
    await publish(databaseUrl, "K2", 4);
    await eventually(() => seen.opens === 2, "the EventSource to reconnect", 20_000);
    await publish(databaseUrl, "K1", 5);
    await eventually(() => seen.seqs.get("K1")?.length === 30 && seen.seqs.get("K2")?.length === 7, "every update, missed and live", 20_000);
    expect(seen.seqs.get("K1")).to.deep.equal(range(30));
    expect(seen.seqs.get("K2")).to.deep.equal(range(7));
    expect(seen.ids.at(-1)!.split("~").sort()).to.deep.equal(["K1.30", "K2.7"]);
  });

  it("SIGTERM drains the streams to the other instance (nothing lost, nothing twice), and no token reaches a log line", async () => {
    const { procs, proxy, databaseUrl } = await twoInstances({ LOG_LEVEL: "debug" });
    const jwt = await mintToken(TEST_JWT_SECRET, { sub: "agent-7", tickets: ["*"], ttlSeconds: 600 });
    const forged = await mintToken("another-secret-0123456789abcdef", { sub: "agent-7", tickets: ["*"], ttlSeconds: 600 });
    const streams = Array.from({ length: 4 }, () => eventSource(`${proxy.url}/sse?tickets=G&access_token=${jwt}`)).map(record);
    await eventually(() => streams.every((s) => s.opens === 1), "four streams open", 15_000);
    // refusals with tokens in the query string and the header, logged at debug
    const refused = await openSse(proxy.url, "G", { token: forged, tokenIn: "query" });
    await refused.ended;
    expect(refused.status).to.equal(401);
    const bad = await openSse(procs[0]!.url, "G", { token: "garbage-token-5e7a1c3b9d" });
    await bad.ended;
    await publish(databaseUrl, "G", 10);
    await eventually(() => streams.every((s) => s.seqs.get("G")?.length === 10), "the first updates");

    const drained = procs.find((p) => (proxy.open.get(p.port)?.size ?? 0) > 0)!;
    const onDrained = proxy.open.get(drained.port)!.size;
    const writer = (async () => {
      for (let i = 0; i < 10; i++) await publish(databaseUrl, "G", 2);
    })();
    drained.kill("SIGTERM");
    expect(await waitExit(drained)).to.equal(0);
    await writer;
    await eventually(() => streams.filter((s) => s.opens === 2).length === onDrained, "the drained instance's streams to reconnect elsewhere", 20_000);
    await publish(databaseUrl, "G", 5);
    await eventually(() => streams.every((s) => s.seqs.get("G")?.length === 35), "every stream to have all 35 updates", 20_000);
    for (const stream of streams) expect(stream.seqs.get("G")).to.deep.equal(range(35));
    expect(streams.filter((s) => s.opens > 2), "one reconnection each").to.deep.equal([]);

    const survivor = procs.find((p) => p !== drained)!;
    survivor.kill("SIGTERM");
    await waitExit(survivor);
    const logs = procs.flatMap((p) => p.output).join("\n");
    expect(logs).to.include("sse stream refused");
    for (const secret of [jwt, forged]) expect(logs).not.to.include(secret.split(".")[2]!);
    expect(logs).not.to.include("garbage-token-5e7a1c3b9d");
    expect(logs).not.to.include("access_token");
  });
});
