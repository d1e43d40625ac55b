/**
 * What only the replication source has: a persistent slot resumed after a SIGKILLed leader, a
 * frozen leader's walsender taken over, a slot dropped or invalidated under the leader, the lag
 * metric, and how `auto` and an explicit `replication` behave on a server without
 * wal_level=logical (the shared one). Real processes, a real PostgreSQL with wal_level=logical.
 */
import { expect } from "chai";
import type { TicketUpdate } from "../src/protocol.js";
import { connect, eventually, request } from "./support/client.js";
import { clusterEnv, randomPrefix, startGateway } from "./support/cluster.js";
import { createTestDatabase, sql, urlFor, waitSequenced } from "./support/db.js";
import { forEachEventSource, slotFor } from "./support/event-sources.js";
import { range, recordHistory } from "./support/history.js";
import { sample, scrape } from "./support/metrics.js";
import { startPostgresServer } from "./support/postgres-server.js";
import { spawnGateway, waitExit } from "./support/process.js";
import { migrate } from "../src/db/migrate.js";
import { silentLogger } from "../src/logger.js";

interface SlotRow {
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
  wal_status: string | null;
}

const slotOf = async (url: string): Promise<SlotRow | undefined> =>
  (await sql<SlotRow>(url, "SELECT active_pid, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1", [slotFor(url)]))[0];

const lsn = (text: string | null | undefined): bigint => {
  if (!text) return 0n;
  const [high, low] = text.split("/");
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
};

const publish = (url: string, ticketId: string, n: number) => sql(url, "SELECT realtime.publish_ticket_event($1, 'r', jsonb_build_object('n', $2::int))", [ticketId, n]);

const counter = async (gateway: { metrics: { replicationEvents: { get(): Promise<{ values: { value: number }[] }> } } }) =>
  (await gateway.metrics.replicationEvents.get()).values[0]?.value ?? 0;

forEachEventSource(() => {
  describe("replication source", () => {
    it("resumes the slot after the leader is SIGKILLed: what was committed while no leader ran arrives once, in order, from the slot", async function () {
      this.timeout(60_000);
      const databaseUrl = await createTestDatabase();
      const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() });
      const first = await spawnGateway({ ...env, INSTANCE_ID: "first" });
      await eventually(async () => sample(await scrape(first.metricsPort), "gateway_listener_leader") === 1, "the first process to lead");
      const early = await connect(first.url);
      await request(early, "ticket:subscribe", { ticketId: "K" });
      const earlyHistory = recordHistory(early);
      for (let n = 1; n <= 5; n++) await publish(databaseUrl, "K", n);
      await eventually(() => earlyHistory.delivered.get("K")?.length === 5, "five events live through the stream");
      expect(sample(await scrape(first.metricsPort), "gateway_replication_events_total")).to.be.at.least(5);
      await eventually(async () => lsn((await slotOf(databaseUrl))?.confirmed_flush_lsn) > 0n, "the slot to be acknowledged");
      const before = lsn((await slotOf(databaseUrl))!.confirmed_flush_lsn);

      first.kill("SIGKILL");
      expect(await waitExit(first)).to.equal("SIGKILL");
      await eventually(async () => (await slotOf(databaseUrl))?.active_pid === null, "the slot to be free");
      // committed while no gateway runs at all
      for (let n = 6; n <= 25; n++) await publish(databaseUrl, "K", n);
      expect(await sql(databaseUrl, "SELECT count(*)::int AS n FROM realtime.ticket_events WHERE seq IS NULL")).to.deep.equal([{ n: 20 }]);

      const second = await startGateway({ ...env, INSTANCE_ID: "second" });
      const socket = await connect(`http://127.0.0.1:${second.port}`);
      const live: TicketUpdate[] = [];
      socket.on("ticket:update", (update) => live.push(update));
      const ack = await request(socket, "ticket:subscribe", { ticketId: "K", sinceSeq: 5 });
      if (!ack.ok) throw new Error(ack.error.message);
      await waitSequenced(databaseUrl);
      for (let n = 26; n <= 30; n++) await publish(databaseUrl, "K", n);
      await eventually(() => ack.missed.length + live.length >= 25, "events 6..30 on the new leader");
      const all = [...ack.missed, ...live];
      expect(all.map((update) => update.seq)).to.deep.equal(range(30).slice(5));
      // each event's seq is its commit's place (the writes were one after another)
      expect(all.map((update) => (update.data as { n: number }).n), "seqs follow commit order").to.deep.equal(range(30).slice(5));
      // numbered from the resumed slot, not by the queue sweep
      expect(await counter(second)).to.be.at.least(25);
      await eventually(async () => lsn((await slotOf(databaseUrl))?.confirmed_flush_lsn) > before, "confirmed_flush_lsn to advance");
      const text = await second.metrics.registry.getSingleMetricAsString("gateway_replication_slot_lag_bytes");
      expect(text, text).to.match(/^gateway_replication_slot_lag_bytes({[^}]*})? \d+$/m);
      expect(await second.metrics.registry.getSingleMetricAsString("gateway_event_source")).to.match(/^gateway_event_source{source="replication"[^}]*} 1$/m);
    });

    it("takes over the slot from a SIGSTOPped leader whose walsender still holds it", async function () {
      this.timeout(60_000);
      const databaseUrl = await createTestDatabase();
      const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { LEADER_LEASE: "2s" } });
      const frozen = await spawnGateway({ ...env, INSTANCE_ID: "frozen" });
      await eventually(async () => (await slotOf(databaseUrl))?.active_pid != null, "the first process to stream");
      const heldBy = (await slotOf(databaseUrl))!.active_pid;
      const standby = await startGateway({ ...env, INSTANCE_ID: "standby" });
      const socket = await connect(`http://127.0.0.1:${standby.port}`);
      await request(socket, "ticket:subscribe", { ticketId: "S" });
      const history = recordHistory(socket);
      await publish(databaseUrl, "S", 1);
      await eventually(() => history.delivered.get("S")?.length === 1, "an event through the first leader");

      frozen.kill("SIGSTOP");
      for (let n = 2; n <= 11; n++) await publish(databaseUrl, "S", n);
      await eventually(() => standby.delivery!.isLeader, "the standby to take over past the lease", 20_000);
      await eventually(async () => {
        const slot = await slotOf(databaseUrl);
        return slot?.active_pid != null && slot.active_pid !== heldBy;
      }, "the standby's walsender to hold the slot", 20_000);
      await eventually(() => history.delivered.get("S")?.length === 11, "every event once the slot was taken over", 20_000);
      frozen.kill("SIGCONT");
      for (let n = 12; n <= 15; n++) await publish(databaseUrl, "S", n);
      await eventually(() => history.delivered.get("S")?.length === 15, "events after the frozen leader woke");
      expect(history.delivered.get("S")).to.deep.equal(range(15));
      expect(history.outOfOrder).to.equal(0);
      expect(history.duplicates).to.equal(0);
      frozen.kill("SIGKILL");
      await waitExit(frozen);
    });

    it("recreates a slot dropped under the leader, and loses nothing", async function () {
      this.timeout(60_000);
      const databaseUrl = await createTestDatabase();
      const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() });
      const gateway = await startGateway({ ...env, INSTANCE_ID: "only" });
      const socket = await connect(`http://127.0.0.1:${gateway.port}`);
      await request(socket, "ticket:subscribe", { ticketId: "D" });
      const history = recordHistory(socket);
      await eventually(async () => (await slotOf(databaseUrl))?.active_pid != null, "the stream to start");
      await publish(databaseUrl, "D", 1);
      await eventually(() => history.delivered.get("D")?.length === 1, "the first event");
      // an operator drops the slot: end its walsender and drop it before the leader restarts it
      await eventually(async () => {
        const slot = await slotOf(databaseUrl);
        if (slot?.active_pid) {
          await sql(databaseUrl, "SELECT pg_terminate_backend($1)", [slot.active_pid]);
          return false;
        }
        return sql(databaseUrl, "SELECT pg_drop_replication_slot($1)", [slotFor(databaseUrl)]).then(
          () => true,
          () => false, // the leader restarted it first: again
        );
      }, "the slot dropped", 10_000, 5);
      for (let n = 2; n <= 21; n++) await publish(databaseUrl, "D", n);
      await eventually(() => history.delivered.get("D")?.length === 21, "every event after the drop", 20_000);
      expect(history.delivered.get("D")).to.deep.equal(range(21));
      await eventually(async () => (await slotOf(databaseUrl))?.active_pid != null, "a new slot, streamed");
      const before = await counter(gateway);
      await publish(databaseUrl, "D", 22);
      await eventually(() => history.delivered.get("D")?.length === 22, "an event through the new slot");
      expect(await counter(gateway)).to.be.greaterThan(before);
    });
  });
}, ["replication"]);

describe("replication source: a slot invalidated by max_slot_wal_keep_size", () => {
  it("is dropped and recreated, the queue is swept, nothing is lost", async function () {
    this.timeout(90_000);
    const server = await startPostgresServer({ flags: ["-c", "wal_level=logical", "-c", "max_slot_wal_keep_size=1MB", "-c", "wal_keep_size=0", "-c", "max_wal_size=32MB", "-c", "min_wal_size=32MB"] });
    await sql(server.url, "CREATE DATABASE lost");
    const databaseUrl = urlFor("lost", server.url);
    await migrate(databaseUrl, "ticket_updates", silentLogger);
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { EVENT_SOURCE: "replication", REPLICATION_SLOT: "lost_slot" } });
    const slot = async () => (await sql<SlotRow>(databaseUrl, "SELECT active_pid, wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'"))[0];
    const first = await spawnGateway({ ...env, INSTANCE_ID: "first" });
    await eventually(async () => (await slot())?.active_pid != null, "the stream to start");
    await publish(databaseUrl, "L", 1);
    await waitSequenced(databaseUrl);
    first.kill("SIGKILL");
    await waitExit(first);
    await eventually(async () => (await slot())?.active_pid === null, "the slot to be free");
    // events committed while no gateway runs, then WAL past max_slot_wal_keep_size and a checkpoint
    for (let n = 2; n <= 11; n++) await publish(databaseUrl, "L", n);
    await sql(databaseUrl, "CREATE TABLE filler (x text)");
    await eventually(async () => {
      await sql(databaseUrl, "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000); SELECT pg_switch_wal(); CHECKPOINT");
      return (await slot())?.wal_status === "lost";
    }, "the slot to be invalidated", 30_000, 10);

    const second = await spawnGateway({ ...env, INSTANCE_ID: "second" });
    const socket = await connect(second.url);
    const ack = await request(socket, "ticket:subscribe", { ticketId: "L", sinceSeq: 1 });
    if (!ack.ok) throw new Error(ack.error.message);
    const live: TicketUpdate[] = [];
    socket.on("ticket:update", (update) => live.push(update));
    await eventually(() => ack.missed.length + live.length === 10, "the ten events committed while the slot was lost", 20_000);
    expect([...ack.missed, ...live].map((update) => update.seq)).to.deep.equal(range(11).slice(1));
    await eventually(async () => (await slot())?.wal_status !== "lost" && (await slot())?.active_pid != null, "a fresh slot, streamed");
    expect(second.output.some((line) => line.includes("replication slot invalidated"))).to.equal(true);
  });
});

describe("event source on a server without wal_level=logical (the shared one)", () => {
  it("auto picks the queue and says why", async () => {
    const databaseUrl = await createTestDatabase({ server: "shared" });
    const gateway = await spawnGateway({ ...clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() }), INSTANCE_ID: "auto" });
    const line = gateway.output.find((text) => text.includes("event source:"));
    expect(line).to.contain("event source: queue").and.to.contain("wal_level is replica");
    const text = await scrape(gateway.metricsPort);
    expect(sample(text, "gateway_event_source", 'source="queue"')).to.equal(1);
    expect(sample(text, "gateway_event_source", 'source="replication"')).to.equal(0);
    gateway.kill("SIGTERM");
    await waitExit(gateway);
  });

  it("an explicit EVENT_SOURCE=replication fails at start with one line saying what is missing", async () => {
    const databaseUrl = await createTestDatabase({ server: "shared" });
    const gateway = await spawnGateway({ ...clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix() }), EVENT_SOURCE: "replication", INSTANCE_ID: "explicit" }, { waitForStart: false });
    expect(await waitExit(gateway)).to.not.equal(0);
    const fatal = gateway.output.filter((text) => text.includes("EVENT_SOURCE=replication is unavailable"));
    expect(fatal).to.have.length(1);
    expect(fatal[0]).to.contain("wal_level is replica (needs logical");
  });
});
