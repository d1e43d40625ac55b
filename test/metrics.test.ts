import { expect } from "chai";
import pg from "pg";
import { LEADER_LOCK } from "../src/delivery/leader.js";
import type { Gateway } from "../src/gateway.js";
import { collect, connect, connectError, eventually, request, token, type TestSocket } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { startCluster, type ClusterMode } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { sample, scrape } from "./support/metrics.js";

/** A scrape, read as numbers; `delta` compares it with an earlier one. */
class Scrape {
  private constructor(readonly text: string) {}
  static async of(gateway: Gateway): Promise<Scrape> {
    return new Scrape(await scrape(gateway.metricsPort));
  }
  value(name: string, labels = ""): number {
    return sample(this.text, name, labels) ?? 0;
  }
  delta(before: Scrape, name: string, labels = ""): number {
    return this.value(name, labels) - before.value(name, labels);
  }
}

const sum = async (gateways: Gateway[], name: string) => (await Promise.all(gateways.map((g) => Scrape.of(g)))).reduce((n, s) => n + s.value(name), 0);
const LATENCY_COUNT = "gateway_ticket_update_latency_seconds_count";
const publish = (url: string, ticketId: string) => sql(url, "SELECT realtime.publish_ticket_event($1, 'note', '{}')", [ticketId]);
/** each simulated client gets its own address (TRUST_PROXY=1), so per-IP limits apply only where a test wants them */
const from = (ip: string) => ({ extraHeaders: { "x-forwarded-for": ip } });

describe("metrics: /metrics of two instances during scripted activity", () => {
  it("moves every counter and gauge by exactly what happened", async () => {
    const cluster = await startCluster(0, {
      env: { TRUST_PROXY: "1", MAX_CONNECTIONS_PER_IP: "2", CONNECTION_RATE_PER_IP: "3/60s" },
    });
    const a = await cluster.add();
    // b: full at 3 connections, and a drain long enough to be caught in the act
    const b = await cluster.add({ MAX_CONNECTIONS: "3", SHUTDOWN_GRACE_MS: "60000" });
    const [urlA, urlB] = cluster.urls as [string, string];
    await eventually(async () => (await sum([a, b], "gateway_listener_leader")) === 1, "one leader");
    const [a0, b0] = [await Scrape.of(a), await Scrape.of(b)];
    expect(a0.value("gateway_max_connections")).to.equal(10_000);
    expect(b0.value("gateway_max_connections")).to.equal(3);

    // connections and every kind of rejection
    const a1 = await connect(urlA, { sub: "a1", ...from("10.0.0.1") });
    const a2 = await connect(urlA, { sub: "a2", ...from("10.0.0.2") });
    const b1 = await connect(urlB, { sub: "b1", ...from("10.0.0.3") });
    const b2 = await connect(urlB, { sub: "b2", ...from("10.0.0.4") });
    const b3 = await connect(urlB, { sub: "b3", ...from("10.0.0.5") });
    const jwt = await token();
    expect((await connectError(urlB, { token: jwt, ...from("10.0.0.6") })).data).to.include({ code: "SERVER_FULL" });
    expect((await connectError(urlA, { token: `${jwt}x`, ...from("10.0.0.7") })).data).to.include({ code: "UNAUTHORIZED" });
    const held = [await connect(urlA, from("10.0.0.8")), await connect(urlA, from("10.0.0.8"))];
    expect((await connectError(urlA, { token: jwt, ...from("10.0.0.8") })).data).to.include({ code: "TOO_MANY_CONNECTIONS" });
    for (let i = 0; i < 3; i++) (await connect(urlA, from("10.0.0.9"))).disconnect();
    expect((await connectError(urlA, { token: jwt, ...from("10.0.0.9") })).data).to.include({ code: "RATE_LIMITED" });
    for (const socket of held) socket.disconnect();
    await eventually(async () => (await Scrape.of(a)).value("gateway_connections") === 2, "a to count 2 open connections");

    // subscriptions and client events
    const ok = { ok: true };
    expect(await request(a1, "ticket:subscribe", { ticketId: "T1" })).to.include(ok);
    expect(await request(a2, "ticket:subscribe", { ticketId: "T1" })).to.include(ok);
    expect(await request(a2, "ticket:subscribe", { ticketId: "T2" })).to.include(ok);
    expect(await request(a2, "ticket:unsubscribe", { ticketId: "T2" })).to.include(ok);
    expect(await request(a1, "ticket:subscribe", {} as never)).to.deep.include({ ok: false });
    expect(await request(b1, "ticket:subscribe", { ticketId: "T1" })).to.include(ok);
    expect(await request(b2, "ticket:subscribe", { ticketId: "T2" })).to.include(ok);
    expect(await request(b1, "ticket:typing", { ticketId: "T1", typing: true })).to.include(ok);

    // committed events: T1 reaches subscribers on both instances, T2 only b
    const seen = new Map<TestSocket, unknown[]>([a1, a2, b1, b2].map((s) => [s, collect(s, "ticket:update")]));
    for (let i = 0; i < 3; i++) await publish(cluster.databaseUrl, "T1");
    for (let i = 0; i < 2; i++) await publish(cluster.databaseUrl, "T2");
    const expected = new Map([[a1, 3], [a2, 3], [b1, 3], [b2, 2]]);
    await eventually(() => [...expected].every(([s, n]) => seen.get(s)!.length === n), "every subscriber to receive its updates");
    // b3 resumes T1 after seq 1: two events replayed
    const resumed = await request(b3, "ticket:subscribe", { ticketId: "T1", sinceSeq: 1 });
    expect(resumed).to.include({ ok: true, recovered: true });
    expect((resumed as { missed: unknown[] }).missed).to.have.length(2);

    // the latency histogram counts one observation per delivered event on each delivering instance
    await eventually(async () => (await Scrape.of(b)).delta(b0, LATENCY_COUNT) === 5, "b to observe 5 deliveries");
    const [a5, b5] = [await Scrape.of(a), await Scrape.of(b)];
    expect(a5.delta(a0, LATENCY_COUNT), "a delivers T1 only").to.equal(3);
    expect(a5.delta(a0, "gateway_ticket_updates_emitted_total") + b5.delta(b0, "gateway_ticket_updates_emitted_total")).to.equal(5);
    const leader = a5.value("gateway_listener_leader") === 1 ? [a5, a0] : [b5, b0];
    expect(leader[0]!.delta(leader[1]!, "gateway_ticket_updates_emitted_total"), "the leader emits all").to.equal(5);
    expect(leader[0]!.delta(leader[1]!, "gateway_ticket_update_dispatch_latency_seconds_count")).to.equal(5);
    expect(a5.value("gateway_listener_leader") + b5.value("gateway_listener_leader")).to.equal(1);
    for (const s of [a5, b5]) {
      expect(s.value("gateway_listener_connected")).to.equal(1);
      expect(s.value("gateway_redis_connected")).to.equal(1);
      expect(s.value("gateway_listener_backlog")).to.equal(0);
      expect(s.value("process_resident_memory_bytes")).to.be.above(0);
      expect(s.text).to.match(/^nodejs_eventloop_lag_p99_seconds\{/m);
      expect(s.value(LATENCY_COUNT)).to.equal(s.value("gateway_ticket_update_latency_seconds_bucket", 'le="+Inf"'));
    }

    expect(a5.delta(a0, "gateway_connections_opened_total")).to.equal(7);
    expect(a5.delta(a0, "gateway_connections")).to.equal(2);
    expect(a5.delta(a0, "gateway_connections_rejected_total", 'reason="UNAUTHORIZED"')).to.equal(1);
    expect(a5.delta(a0, "gateway_connections_rejected_total", 'reason="TOO_MANY_CONNECTIONS"')).to.equal(1);
    expect(a5.delta(a0, "gateway_connections_rejected_total", 'reason="RATE_LIMITED"')).to.equal(1);
    expect(a5.delta(a0, "gateway_connections_rejected_total", 'reason="SERVER_FULL"')).to.equal(0);
    expect(a5.delta(a0, "gateway_subscriptions")).to.equal(2);
    expect(a5.delta(a0, "gateway_client_events_total", 'event="ticket:subscribe",result="ok"')).to.equal(3);
    expect(a5.delta(a0, "gateway_client_events_total", 'event="ticket:subscribe",result="INVALID_PAYLOAD"')).to.equal(1);
    expect(a5.delta(a0, "gateway_client_events_total", 'event="ticket:unsubscribe",result="ok"')).to.equal(1);
    expect(a5.delta(a0, "gateway_recovered_events_total")).to.equal(0);

    expect(b5.delta(b0, "gateway_connections_opened_total")).to.equal(3);
    expect(b5.delta(b0, "gateway_connections")).to.equal(3);
    expect(b5.delta(b0, "gateway_connections_rejected_total", 'reason="SERVER_FULL"')).to.equal(1);
    expect(b5.delta(b0, "gateway_connections_rejected_total", 'reason="UNAUTHORIZED"')).to.equal(0);
    expect(b5.delta(b0, "gateway_subscriptions")).to.equal(3);
    expect(b5.delta(b0, "gateway_client_events_total", 'event="ticket:subscribe",result="ok"')).to.equal(3);
    expect(b5.delta(b0, "gateway_client_events_total", 'event="ticket:typing",result="ok"')).to.equal(1);
    expect(b5.delta(b0, "gateway_recovered_events_total")).to.equal(2);

    // a disconnect gives back its connection and its subscriptions
    b2.disconnect();
    await eventually(async () => {
      const s = await Scrape.of(b);
      return s.delta(b0, "gateway_connections") === 2 && s.delta(b0, "gateway_subscriptions") === 2;
    }, "b to count 2 connections and 2 subscriptions after a disconnect");

    // a draining instance refuses with SHUTTING_DOWN, and counts it
    const stopped = b.stop("test drain");
    expect((await connectError(urlB, { token: jwt, ...from("10.0.0.10") })).data).to.include({ code: "SHUTTING_DOWN" });
    const drained = await Scrape.of(b);
    expect(drained.delta(b0, "gateway_connections_rejected_total", 'reason="SHUTTING_DOWN"')).to.equal(1);
    b1.disconnect();
    b3.disconnect();
    await stopped;
  });

  it("reports the pending-dispatch backlog and its age on every instance while nobody can lead, and 0 once dispatched", async () => {
    const cluster = await startCluster(0);
    // hold the leader lock from the test: no instance can lead, so committed events wait
    const blocker = new pg.Client({ connectionString: cluster.databaseUrl });
    blocker.on("error", () => undefined);
    await blocker.connect();
    onCleanup("lock holder", () => blocker.end().catch(() => undefined));
    const { rows } = await blocker.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK]);
    expect(rows[0]!.ok).to.equal(true);
    const gateways = [await cluster.add(), await cluster.add()];
    const socket = await connect(cluster.urls[1]!);
    await request(socket, "ticket:subscribe", { ticketId: "B1" });
    const seen = collect(socket, "ticket:update");
    for (let i = 0; i < 3; i++) await publish(cluster.databaseUrl, "B1");

    for (const gateway of gateways) {
      const first = await Scrape.of(gateway);
      expect(first.value("gateway_listener_leader")).to.equal(0);
      expect(first.value("gateway_listener_backlog")).to.equal(3);
      const usage = first.value("gateway_pg_notification_queue_usage_ratio");
      expect(usage).to.be.at.least(0).and.below(1);
      expect(first.text).to.match(/^gateway_pg_notification_queue_usage_ratio\{/m);
      const age = first.value("gateway_listener_oldest_pending_age_seconds");
      expect(age).to.be.above(0);
      await eventually(async () => (await Scrape.of(gateway)).value("gateway_listener_oldest_pending_age_seconds") > age + 0.2, "the oldest event's age to grow");
    }
    expect(seen).to.be.empty;

    await blocker.end();
    await eventually(() => seen.length === 3, "the backlog to be dispatched once a leader is elected", 15_000);
    await eventually(async () => {
      const scrapes = await Promise.all(gateways.map((g) => Scrape.of(g)));
      return scrapes.every((s) => s.value("gateway_listener_backlog") === 0 && s.value("gateway_listener_oldest_pending_age_seconds") === 0);
    }, "backlog and age back to 0 on both instances");
    expect(await sum(gateways, "gateway_listener_leader")).to.equal(1);
    expect(await sum(gateways, "gateway_ticket_updates_emitted_total")).to.equal(3);
  });

  for (const mode of ["classic", "sharded", "single"] as ClusterMode[]) {
    it(`counts delivery latency once per event on each instance holding subscribers (${mode})`, async () => {
      const n = mode === "single" ? 1 : 3;
      const cluster = await startCluster(n, { mode });
      await eventually(async () => (await sum(cluster.gateways, "gateway_listener_leader")) === 1, "one leader");
      // none on the leader (it encodes every update it emits, delivered or not), two and one on the others
      const leader = (await Promise.all(cluster.gateways.map((g) => Scrape.of(g)))).findIndex((s) => s.value("gateway_listener_leader") === 1);
      const placement = mode === "single" ? [0, 0, 0] : [(leader + 1) % 3, (leader + 1) % 3, (leader + 2) % 3];
      const subscribers = await Promise.all(placement.map((i, k) => connect(cluster.urls[i]!, { sub: `s${k}` })));
      for (const socket of subscribers) await request(socket, "ticket:subscribe", { ticketId: "L1" });
      const seen = subscribers.map((socket) => collect(socket, "ticket:update"));
      const before = await Promise.all(cluster.gateways.map((g) => Scrape.of(g)));
      for (let i = 0; i < 4; i++) await publish(cluster.databaseUrl, "L1");
      await eventually(() => seen.every((list) => list.length === 4), "every subscriber to receive 4 updates");
      const expected = cluster.gateways.map((_, i) => (mode === "single" || i !== leader ? 4 : 0));
      await eventually(async () => {
        const after = await Promise.all(cluster.gateways.map((g) => Scrape.of(g)));
        return after.every((s, i) => s.delta(before[i]!, LATENCY_COUNT) === expected[i]);
      }, `latency counts ${expected.join("/")} per instance`);
      for (const s of await Promise.all(cluster.gateways.map((g) => Scrape.of(g)))) {
        expect(s.value("gateway_ticket_update_latency_seconds_bucket", 'le="10"')).to.equal(s.value(LATENCY_COUNT));
        expect(s.value("gateway_ticket_update_latency_seconds_bucket", 'le="0.001"')).to.be.at.most(s.value(LATENCY_COUNT));
      }
    });
  }
});
