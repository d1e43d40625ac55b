/**
 * Chaos, Redis side: what pub/sub loses (a killed subscriber connection, a stopped Redis), and a
 * PostgreSQL connection cut on the same instance at the same time. Every socket's history must
 * still be exactly seq 1..N per ticket.
 */
import { expect } from "chai";
import { eventually } from "./support/client.js";
import { report, startChaos } from "./support/chaos.js";
import { sql } from "./support/db.js";
import { forEachEventSource } from "./support/event-sources.js";

const tickets = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const bulk = (url: string, ids: string[], perTicket: number) =>
  sql(url, "SELECT realtime.publish_ticket_event(t, 'bulk', jsonb_build_object('i', i)) FROM unnest($1::text[]) AS t, generate_series(1, $2) AS i", [ids, perTicket]);

describe("chaos: Redis and connection faults (real processes)", function () {
  this.timeout(120_000);

  it("a non-leader's subscriber killed after a backlog of >10,000 events still gets what was committed during the blip", async () => {
    const chaos = await startChaos({ instances: 2 });
    await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
    const leader = await chaos.leader();
    const other = 1 - leader;
    const ids = tickets("bl", 50);
    for (let i = 0; i < 10; i++) await chaos.client(chaos.gateways[other]!.url, ids.slice(i * 5, i * 5 + 5));
    await chaos.client(chaos.gateways[leader]!.url, ids);
    await bulk(chaos.databaseUrl, ids, 210); // 10,500 events, all in the last minute
    chaos.writers.start(ids, 200);
    expect(await chaos.killSubscriber(other)).to.equal(1);
    await bulk(chaos.databaseUrl, ids, 6); // committed while the subscriber reconnects
    const blipAt = Date.now();
    const result = await chaos.verify();
    const repaired = await chaos.metric("gateway_reconciled_events_total");
    report("subscriber blip after 10,500 events", { ...result, msToRepair: Date.now() - blipAt, repaired });
    expect(result.events).to.be.greaterThan(10_800);
  });

  it("an eviction committed during a subscriber blip still removes the user: ticket:revoked, then nothing", async () => {
    const chaos = await startChaos({ instances: 2 });
    await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
    const other = 1 - (await chaos.leader());
    const evictee = await chaos.client(chaos.gateways[other]!.url, ["ev"], "evictee");
    const witness = await chaos.client(chaos.gateways[other]!.url, ["ev"], "witness");
    await bulk(chaos.databaseUrl, ["ev"], 3);
    await eventually(() => evictee.seqs.get("ev")!.length === 3, "the first events");
    expect(await chaos.killSubscriber(other)).to.equal(1);
    await sql(chaos.databaseUrl, "SELECT realtime.evict('ev', 'evictee')");
    await eventually(() => evictee.revoked.has("ev"), "ticket:revoked on the evicted socket", 15_000);
    await bulk(chaos.databaseUrl, ["ev"], 5);
    const result = await chaos.verify();
    expect(evictee.seqs.get("ev")!.length, "no update after ticket:revoked").to.equal(evictee.revoked.get("ev"));
    expect(witness.seqs.get("ev")).to.have.length(8);
    report("eviction during a blip", result);
  });

  it("tail loss: one event during a blip and nothing after arrives within RECONCILE_INTERVAL and a margin", async () => {
    const chaos = await startChaos({ instances: 2, env: { RECONCILE_INTERVAL: "2s" } });
    await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
    const other = 1 - (await chaos.leader());
    const client = await chaos.client(chaos.gateways[other]!.url, ["tail"]);
    await bulk(chaos.databaseUrl, ["tail"], 1);
    await eventually(() => client.seqs.get("tail")!.length === 1, "the first event");
    expect(await chaos.killSubscriber(other)).to.equal(1);
    await bulk(chaos.databaseUrl, ["tail"], 1);
    const committedAt = Date.now();
    await eventually(() => client.seqs.get("tail")!.length === 2, "the tail event", 10_000);
    const lag = client.lastAt.get("tail")! - committedAt;
    expect(lag, "repaired within RECONCILE_INTERVAL + 2 s").to.be.below(4000);
    const result = await chaos.verify();
    report("tail loss", { ...result, msToRepair: lag });
  });

  it("a PostgreSQL connection cut and a Redis blip on the same instance at once", async () => {
    const chaos = await startChaos({ instances: 2, proxiedPostgres: [1] });
    await chaos.spawn(0); // leads: it starts first, through no proxy
    await chaos.leader();
    await chaos.spawn(1);
    const ids = tickets("pc", 10);
    for (let i = 0; i < 4; i++) await chaos.client(chaos.gateways[1]!.url, ids.slice(i * 2, i * 2 + 4));
    await chaos.client(chaos.gateways[0]!.url, ids);
    chaos.writers.start(ids, 100);
    await eventually(async () => (await sql<{ n: number }>(chaos.databaseUrl, "SELECT count(*)::int AS n FROM realtime.ticket_events"))[0]!.n > 50, "some traffic");
    chaos.pgProxy!.cut();
    expect(await chaos.killSubscriber(1)).to.equal(1);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the fault: both links down for a moment under load
    const result = await chaos.verify();
    report("PostgreSQL cut + Redis blip", { ...result });
  });
});

// publishes refused for 10 s: the replication source must not acknowledge them (it restarts from the slot)
forEachEventSource(() =>
  describe("chaos: Redis down (real processes)", function () {
    this.timeout(120_000);

    it("Redis stopped for 10 s and restarted under load: nothing lost, nothing twice", async () => {
      const chaos = await startChaos({ instances: 2 });
      await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
      const ids = tickets("rs", 20);
      for (let i = 0; i < 8; i++) await chaos.client(chaos.gateways[i % 2]!.url, ids.slice((i * 5) % 20, ((i * 5) % 20) + 5));
      chaos.writers.start(ids, 100);
      await eventually(async () => (await sql<{ n: number }>(chaos.databaseUrl, "SELECT count(*)::int AS n FROM realtime.ticket_events"))[0]!.n > 100, "some traffic");
      await chaos.redis.stop("SIGKILL");
      const down = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 10_000)); // the fault itself: Redis away for 10 s
      await chaos.redis.start();
      const result = await chaos.verify();
      report("Redis down 10 s", { ...result, downMs: Date.now() - down });
    });
  }),
);
