import { expect } from "chai";
import pg from "pg";
import { HEADS_SQL, HISTORY_SQL, MAX_REPLAY, RANGE_SQL, REPAIR_PAGE } from "../src/delivery/history.js";
import { PROBE_SQL, SEQUENCE_IDS_SQL, SEQUENCE_SQL } from "../src/delivery/dispatcher.js";
import { createTestDatabase } from "./support/db.js";

/**
 * The statements the delivery path runs on every batch, round or subscribe must cost what the rows
 * they ask for cost, not what the outbox retains. Each is EXPLAINed (ANALYZE, BUFFERS) on a small
 * outbox and on one 200 times larger, both freshly analyzed: the plans must use the indexes named
 * here (never a scan of ticket_events) and touch about as many buffers in both.
 *
 * The leader's statements come from src/delivery/dispatcher.ts itself, so a change of the SQL
 * is checked against its plan here.
 */
const TICKETS = 1000;
const PENDING = 50;
const MISSED = 10;

interface Outbox {
  /** sequenced events per ticket t0..t999 */
  perTicket: number;
  /** sequenced events of the ticket the history reads ask for */
  hot: number;
}
const SMALL: Outbox = { perTicket: 1, hot: 20 };
const LARGE: Outbox = { perTicket: 200, hot: 20_000 };

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Shared Hit Blocks": number;
  "Shared Read Blocks": number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

interface Measured {
  buffers: number;
  scans: string[];
}

async function fill(url: string, { perTicket, hot }: Outbox): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO realtime.ticket_events (ticket_id, seq, type, data)
       SELECT 't' || t, s, 'x', jsonb_build_object('s', s) FROM generate_series(0, $1 - 1) t, generate_series(1, $2) s`,
      [TICKETS, perTicket],
    );
    await client.query("INSERT INTO realtime.ticket_events (ticket_id, seq, type, data) SELECT 'hot', s, 'x', '{}' FROM generate_series(1, $1) s", [hot]);
    await client.query("INSERT INTO realtime.ticket_heads (ticket_id, last_seq) SELECT ticket_id, max(seq) FROM realtime.ticket_events GROUP BY 1");
    await client.query("INSERT INTO realtime.ticket_events (ticket_id, type, data) SELECT 't' || (g * 7 % $2), 'x', '{}' FROM generate_series(1, $1) g", [PENDING, TICKETS]);
    await client.query("VACUUM ANALYZE realtime.ticket_events");
    await client.query("VACUUM ANALYZE realtime.ticket_heads");
  } finally {
    await client.end();
  }
}

/** EXPLAIN (ANALYZE, BUFFERS) each statement in a rolled-back transaction, as the leader's session would run it. */
async function measure(url: string, hot: number): Promise<Record<string, Measured>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // the replication source numbers the ids the stream named, in commit order
  const { rows: pending } = await client.query<{ id: string }>("SELECT id FROM realtime.ticket_events WHERE seq IS NULL ORDER BY id");
  const pendingIds = pending.map((row) => row.id);
  const statements: Record<string, [string, unknown[]]> = {
    probe: [PROBE_SQL, ["0"]],
    sequence: [SEQUENCE_SQL, [500, 0, "0"]],
    sequenceIds: [SEQUENCE_IDS_SQL, [pendingIds, []]],
    heads: [HEADS_SQL, [Array.from({ length: TICKETS }, (_, t) => `t${t}`)]],
    history: [HISTORY_SQL, ["hot", hot - MISSED, MAX_REPLAY]],
    repair: [RANGE_SQL, ["hot", hot - MISSED, hot, REPAIR_PAGE]],
  };
  const out: Record<string, Measured> = {};
  try {
    for (const [name, [text, values]] of Object.entries(statements)) {
      await client.query("BEGIN");
      await client.query("INSERT INTO realtime.leader (singleton, instance_id, pid, lease_ms, renewed_at) VALUES (true, 'plan', pg_backend_pid(), 5000, now())");
      // a warm-up run, so both outboxes are measured with their pages cached
      await client.query(text, values);
      await client.query("ROLLBACK");
      await client.query("BEGIN");
      await client.query("INSERT INTO realtime.leader (singleton, instance_id, pid, lease_ms, renewed_at) VALUES (true, 'plan', pg_backend_pid(), 5000, now())");
      const { rows } = await client.query<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, values);
      await client.query("ROLLBACK");
      const plan = rows[0]!["QUERY PLAN"][0]!.Plan;
      out[name] = {
        buffers: plan["Shared Hit Blocks"] + plan["Shared Read Blocks"],
        scans: nodes(plan)
          .filter((n) => (n["Relation Name"] !== undefined || n["Index Name"] !== undefined) && /Scan/.test(n["Node Type"]))
          .map((n) => `${n["Node Type"]} ${n["Relation Name"] ?? ""}${n["Index Name"] ? ` using ${n["Index Name"]}` : ""}`),
      };
    }
  } finally {
    await client.end();
  }
  return out;
}

describe("Costs that must not grow with retention", () => {
  it(`the probe, the sequencing batch, the heads round and the history reads use their indexes and touch as many buffers with ${LARGE.perTicket * TICKETS + LARGE.hot} retained events as with ${SMALL.perTicket * TICKETS + SMALL.hot}`, async function () {
    this.timeout(120_000);
    const [small, large] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    await Promise.all([fill(small, SMALL), fill(large, LARGE)]);
    const before = await measure(small, SMALL.hot);
    const after = await measure(large, LARGE.hot);

    const usesOnly = (m: Measured, allowed: RegExp) => m.scans.filter((s) => /ticket_events/.test(s) && !allowed.test(s));
    expect(usesOnly(after.probe!, /using ticket_events_unsequenced_idx$/), "probe").to.deep.equal([]);
    expect(after.probe!.scans.length, "probe reads the queue index").to.equal(1);
    // the picked rows come from the queue index; the UPDATE finds each by primary key
    expect(usesOnly(after.sequence!, /using ticket_events_(unsequenced_idx|pkey)$/), "sequence").to.deep.equal([]);
    expect(after.sequence!.scans.some((s) => /using ticket_events_unsequenced_idx$/.test(s)), `sequence picks from the queue index: ${after.sequence!.scans.join("; ")}`).to.equal(true);
    // the stream's ids are looked up by primary key or among the pending rows, whatever the outbox holds
    expect(usesOnly(after.sequenceIds!, /using ticket_events_(unsequenced_idx|pkey)$/), "sequenceIds").to.deep.equal([]);
    // ticket_heads holds one row per ticket whatever the retention (by primary key, or a scan of
    // it when the instance holds most tickets): it must only never touch the outbox
    expect(after.heads!.scans.filter((s) => /ticket_events/.test(s)), "heads").to.deep.equal([]);
    // a range of one ticket's seqs: through the (ticket_id, seq) key, directly or as a bitmap
    const byKey = (m: Measured) => m.scans.filter((s) => /ticket_events/.test(s) && !/ticket_events_ticket_id_seq_key$/.test(s) && !/^Bitmap Heap Scan/.test(s));
    expect(byKey(after.history!), "history").to.deep.equal([]);
    expect(after.history!.scans.some((s) => /ticket_events_ticket_id_seq_key$/.test(s)), "history uses the key").to.equal(true);
    expect(byKey(after.repair!), "repair").to.deep.equal([]);
    expect(after.repair!.scans.some((s) => /ticket_events_ticket_id_seq_key$/.test(s)), "repair uses the key").to.equal(true);

    if (process.env.TEST_PLAN_REPORT) for (const name of Object.keys(before)) console.log(name, before[name], after[name]);
    for (const name of Object.keys(before)) {
      // one more index level at most, per row asked for: a scan of the outbox would be 200 times more
      const limit = before[name]!.buffers * 2 + 10;
      expect(after[name]!.buffers, `${name}: ${after[name]!.buffers} buffers with the large outbox vs ${before[name]!.buffers} (${after[name]!.scans.join("; ")})`).to.be.at.most(limit);
    }
  });

  it("dead queue-index entries left by numbered rows are skipped: the queue source's probe from its floor reads a few pages, not every entry since the last VACUUM", async function () {
    this.timeout(120_000);
    const url = await createTestDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      // the state between two autovacuums: 100,000 events numbered since, none vacuumed away
      await client.query("ALTER TABLE realtime.ticket_events SET (autovacuum_enabled = false)");
      await client.query("INSERT INTO realtime.ticket_events (ticket_id, type, data) SELECT 't' || (g % 100), 'x', '{}' FROM generate_series(1, 100000) g");
      await client.query("UPDATE realtime.ticket_events SET seq = id");
      await client.query("INSERT INTO realtime.ticket_events (ticket_id, type, data) SELECT 't1', 'x', '{}' FROM generate_series(1, 5)");
      const { rows } = await client.query<{ floor: string }>("SELECT (max(id) FILTER (WHERE seq IS NOT NULL) - 10000)::text AS floor FROM realtime.ticket_events");
      const buffers = async (from: string) => {
        // twice: the first scan only marks the dead entries (as every later probe would find them)
        await client.query(PROBE_SQL, [from]);
        const { rows: plan } = await client.query<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${PROBE_SQL}`, [from]);
        const root = plan[0]!["QUERY PLAN"][0]!.Plan;
        return root["Shared Hit Blocks"] + root["Shared Read Blocks"];
      };
      const fromZero = await buffers("0");
      const fromFloor = await buffers(rows[0]!.floor);
      if (process.env.TEST_PLAN_REPORT) console.log({ fromZero, fromFloor });
      expect(fromFloor, `probe from the floor: ${fromFloor} buffers (from 0: ${fromZero})`).to.be.at.most(60);
      expect(fromZero, "the unbounded probe does walk the dead entries (else this test shows nothing)").to.be.above(fromFloor * 3);
    } finally {
      await client.end();
    }
  });
});
