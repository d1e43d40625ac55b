/**
 * Step 2: the leader turns committed outbox rows into sequenced events and publishes them.
 *
 * Writers only INSERT (`seq` NULL), and send no NOTIFY: the leader polls the queue every
 * QUEUE_POLL_INTERVAL with a read-only probe. It numbers what has committed, per ticket, in one
 * statement on its own session: it takes the oldest unsequenced rows (the partial index is the
 * queue, so the cost does not grow with retention), adds their count to each ticket's head in
 * `realtime.ticket_heads` and writes the seqs, fenced by its lease (a session that lost the lease
 * numbers nothing). Then it hands the batch to the bus. A crash between the commit and the publish
 * loses nothing: every instance's reconciler finds the heads ahead and reads the events back.
 *
 * With EVENT_SOURCE=replication the committed ids come from the replication stream instead
 * (replication.ts) and are numbered in commit order by SEQUENCE_IDS_SQL; the queue is then swept
 * about once a second while the stream is caught up (rows older than two seconds: the stream's own
 * rows are left to it), so
 * nothing can be stranded; while the stream is down the queue is polled as above.
 */
import type pg from "pg";
import type { EventSource } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { TicketUpdate } from "../protocol.js";
import type { DeliveryBus } from "./bus.js";
import { readEvictions } from "./history.js";
import { parseRawNotification } from "./raw-notify.js";
import { ReplicationStream } from "./replication.js";
import type { Retention } from "./retention.js";
import { toUpdate, type EventRow } from "./rows.js";

/**
 * The idle poll: one probe of the queue's partial index, from `$1` up. Every numbered row leaves a
 * dead entry in that index until VACUUM (autovacuum waits for 20 % of the table), and a probe
 * from the left walks them all: the queue source probes from a floor just below the newest ids it
 * numbered, and from 0 once a second (a transaction that commits far behind waits at most that).
 */
export const PROBE_SQL = "SELECT 1 FROM realtime.ticket_events WHERE seq IS NULL AND id > $1 LIMIT 1";

/** Both statements run as the lease holder only: a session that lost the lease numbers nothing. */
const FENCE = `fence AS (
  UPDATE realtime.leader SET renewed_at = clock_timestamp() WHERE pid = pg_backend_pid() RETURNING 1
)`;

/** Number the `picked` rows per ticket in `ord` order after each ticket's head, and advance the heads. */
const NUMBER_PICKED = `numbered AS (
  SELECT id, ticket_id, row_number() OVER (PARTITION BY ticket_id ORDER BY ord) AS n, count(*) OVER (PARTITION BY ticket_id) AS c
  FROM picked
), heads AS (
  INSERT INTO realtime.ticket_heads AS h (ticket_id, last_seq)
  SELECT ticket_id, count(*) FROM picked GROUP BY ticket_id
  ON CONFLICT (ticket_id) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
  RETURNING h.ticket_id, h.last_seq
)`;

/** The queue source's batch (and the replication source's safety sweep). Exported for its plan test. */
export const SEQUENCE_SQL = `
WITH ${FENCE}, picked AS (
  SELECT id, ticket_id, id AS ord FROM realtime.ticket_events
  WHERE seq IS NULL AND id > $3 AND EXISTS (SELECT 1 FROM fence) AND created_at <= clock_timestamp() - make_interval(secs => $2::int / 1000.0)
  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), ${NUMBER_PICKED}
UPDATE realtime.ticket_events e SET seq = heads.last_seq - numbered.c + numbered.n
FROM numbered JOIN heads USING (ticket_id)
WHERE e.id = numbered.id
RETURNING e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at`;

/**
 * The replication source's statement: number the given ids per ticket in the given (commit) order,
 * fenced by the lease like SEQUENCE_SQL. Ids numbered already (a slot replayed after a crash, the
 * queue sweep first) are returned as they are, to be published again (ledgers drop duplicates).
 *
 * A commit can reach the walsender before it is visible to other sessions' snapshots (PostgreSQL
 * flushes the commit record, then ends the transaction in the proc array), so an id may not be
 * visible yet: only the ids before the first invisible one are handled (commit order is kept),
 * and the row `cutoff` tells where that is; the caller retries the rest. Ids in $2 are given up
 * on (gone for good: deleted, pruned) and do not stop the rest. The `fence` row says the
 * statement ran as the lease holder.
 */
export const SEQUENCE_IDS_SQL = `
WITH ${FENCE}, input AS (
  SELECT u.id, u.ord FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) WHERE EXISTS (SELECT 1 FROM fence)
), cutoff AS (
  SELECT coalesce(min(i.ord), 9223372036854775807) AS ord FROM input i
  WHERE i.id <> ALL ($2::bigint[]) AND NOT EXISTS (SELECT 1 FROM realtime.ticket_events e WHERE e.id = i.id)
), picked AS (
  SELECT e.id, e.ticket_id, i.ord FROM input i JOIN realtime.ticket_events e ON e.id = i.id
  WHERE e.seq IS NULL AND i.ord < (SELECT ord FROM cutoff) FOR UPDATE OF e
), ${NUMBER_PICKED}, updated AS (
  UPDATE realtime.ticket_events e SET seq = heads.last_seq - numbered.c + numbered.n
  FROM numbered JOIN heads USING (ticket_id)
  WHERE e.id = numbered.id
  RETURNING e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at
)
SELECT 'event' AS kind, id, ticket_id, seq, type, data, created_at FROM updated
UNION ALL
SELECT 'event', e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at FROM input i JOIN realtime.ticket_events e ON e.id = i.id
WHERE e.seq IS NOT NULL AND i.ord < (SELECT ord FROM cutoff)
UNION ALL
SELECT 'cutoff', (SELECT ord FROM cutoff), NULL, NULL, NULL, NULL, NULL FROM fence`;

/** The result of numbering a run of replicated ids. */
export interface Numbered {
  /** the events of ids[0 .. handled), in that order */
  updates: TicketUpdate[];
  /** how many of the ids (a prefix) were handled; the rest are not visible yet */
  handled: number;
}

/** With the replication source streaming, the queue is swept this often ... */
const SWEEP_INTERVAL_MS = 1000;
/** The queue's probe starts this many ids below the newest it numbered (0: from the left, once a second). */
const FLOOR_WINDOW = 10_000n;
const FULL_PROBE_INTERVAL_MS = 1000;
/** ... for rows at least this old (younger ones are the stream's). */
const SWEEP_GRACE_MS = 2000;
/** The slot's lag is read this often on the leader. */
const LAG_INTERVAL_MS = 5000;

/** Evictions are re-read this far back: a transaction may commit well after it stamped evicted_at. */
export const EVICTION_OVERLAP_MS = 120_000;
/** The leader's fast path re-reads only this far behind the newest eviction it published. */
const FAST_OVERLAP_MS = 5000;

export interface DispatcherOptions {
  bus: DeliveryBus;
  retention: Retention;
  logger: Logger;
  metrics: Metrics;
  /** @default "queue" */
  source?: EventSource;
  /** the replication source's connection (without `replication`: the library adds it) */
  connectionString?: string;
  /** the slot and publication name (REPLICATION_SLOT) */
  slot?: string;
  /** @default 500 */
  batchSize?: number;
}

export function createDispatcher({ bus, retention, logger, metrics, source = "queue", connectionString, slot = "realtime_gateway", batchSize = 500 }: DispatcherOptions) {
  const log = logger.child({ component: "dispatcher" });
  let evictionsDue = true;
  let newestEviction: number | undefined;
  let sweptAt = 0;
  /** where the next probe starts (ids above it), and when the last one from 0 ran */
  let floor = 0n;
  let fullProbeAt = 0;
  let lagReadAt = 0;

  function observe(updates: TicketUpdate[]): void {
    const now = Date.now();
    for (const update of updates) metrics.dispatchLatency.observe(Math.max(0, now - Date.parse(update.at)) / 1000);
    metrics.updatesEmitted.inc(updates.length);
  }

  async function sequenceIds(session: pg.Client, ids: string[], givenUp: string[]): Promise<Numbered> {
    // prepared once per session: planning the statement cost as much as running it
    const { rows } = await session.query<EventRow & { kind: "event" | "cutoff" }>({ name: "realtime-sequence-ids", text: SEQUENCE_IDS_SQL, values: [ids, givenUp] });
    const cutoff = rows.find((row) => row.kind === "cutoff");
    if (!cutoff) throw new Error("the lease is held by another session: not numbering");
    // in the stream's order: each ticket's seqs ascend along it
    const order = new Map(ids.map((id, i) => [id, i]));
    const updates = rows
      .filter((row) => row.kind === "event")
      .map(toUpdate)
      .sort((a, b) => order.get(a.id!)! - order.get(b.id!)!);
    observe(updates);
    return { updates, handled: Math.min(ids.length, Number(cutoff.id) - 1) };
  }

  /** the probe's lower bound: just below the newest numbered ids, or 0 once a second */
  function probeFrom(): string {
    if (Date.now() - fullProbeAt < FULL_PROBE_INTERVAL_MS) return floor.toString();
    fullProbeAt = Date.now();
    return "0";
  }

  /** Number whatever the queue holds above `from` (oldest first), in batches; `graceMs` leaves the youngest rows. */
  async function sweep(session: pg.Client, graceMs = 0, from = "0"): Promise<void> {
    if (await pending(session, from)) while ((await sequenceBatch(session, graceMs, from)) === batchSize);
  }

  const stream =
    source === "replication"
      ? new ReplicationStream({
          connectionString: connectionString!,
          slot,
          logger,
          metrics,
          sequence: sequenceIds,
          publish: (updates) => bus.publish(updates),
          sweep: (session) => sweep(session),
        })
      : undefined;

  async function readLag(session: pg.Client): Promise<void> {
    if (!stream || Date.now() - lagReadAt < LAG_INTERVAL_MS) return;
    lagReadAt = Date.now();
    const lag = await stream.lag(session);
    metrics.replicationSlotLag.set(lag?.bytes ?? 0);
    // dropped or invalidated under the stream: restart it (the slot is recreated, the queue swept)
    if (stream.streaming && (!lag || lag.walStatus === "lost")) {
      log.warn({ walStatus: lag?.walStatus ?? "missing" }, "replication slot gone or invalidated under the stream; recreating it");
      stream.restart();
    }
  }

  /** A read-only look at the queue: the idle poll costs one index probe, not a write. */
  async function pending(session: pg.Client, from: string): Promise<boolean> {
    const { rows } = await session.query(PROBE_SQL, [from]);
    return rows.length > 0;
  }

  async function sequenceBatch(session: pg.Client, graceMs: number, from: string): Promise<number> {
    const { rows } = await session.query<EventRow>(SEQUENCE_SQL, [batchSize, graceMs, from]);
    if (rows.length === 0) return 0;
    for (const row of rows) if (BigInt(row.id) - FLOOR_WINDOW > floor) floor = BigInt(row.id) - FLOOR_WINDOW;
    const updates = rows.map(toUpdate).sort((a, b) => Number(a.id) - Number(b.id));
    observe(updates);
    // not awaited: a lost publish is repaired by the instances
    bus.publish(updates).catch(() => undefined);
    return rows.length;
  }

  /**
   * The fast path: publish the evictions newer than the last ones published (minus a few seconds
   * for transactions that committed late; applying one twice is harmless). An eviction that
   * committed later still reaches every instance through its reconciler.
   */
  async function publishEvictions(session: pg.Client): Promise<void> {
    evictionsDue = false;
    const after = newestEviction === undefined ? undefined : newestEviction - FAST_OVERLAP_MS;
    const rows = await readEvictions(session, { withinMs: EVICTION_OVERLAP_MS, after });
    for (const row of rows) newestEviction = Math.max(newestEviction ?? 0, row.evictedAt);
    if (rows.length > 0) bus.publishEvictions(rows);
  }

  return {
    async run(session: pg.Client): Promise<void> {
      if (!stream || (!stream.streaming && !stream.starting)) await sweep(session, 0, probeFrom());
      else if (stream.caughtUp && Date.now() - sweptAt >= SWEEP_INTERVAL_MS) {
        // not while the stream works through a backlog (a replay): its rows are old but its own
        sweptAt = Date.now();
        await sweep(session, SWEEP_GRACE_MS);
      }
      if (evictionsDue) await publishEvictions(session);
      await readLag(session);
      await retention.maybePrune(session);
    },
    /** the lease is won on this session: start streaming (replication) */
    elected(session: pg.Client): void {
      fullProbeAt = 0;
      stream?.start(session);
    },
    /** the lease is lost or given up */
    async deposed(): Promise<void> {
      metrics.replicationSlotLag.set(0);
      await stream?.stop();
    },
    notified(payload: string): void {
      if (payload === "realtime:evict") {
        evictionsDue = true;
        return;
      }
      const raw = parseRawNotification(payload);
      if (!raw) {
        metrics.malformedNotifications.inc();
        log.warn({ payload: payload.slice(0, 200) }, "malformed raw notification ignored");
        return;
      }
      metrics.updatesEmitted.inc();
      bus.publish([raw satisfies TicketUpdate]).catch(() => undefined);
    },
  };
}
