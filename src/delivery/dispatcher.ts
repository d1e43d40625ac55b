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
 */
import type pg from "pg";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { TicketUpdate } from "../protocol.js";
import type { DeliveryBus } from "./bus.js";
import { readEvictions } from "./history.js";
import { parseRawNotification } from "./raw-notify.js";
import type { Retention } from "./retention.js";
import { toUpdate, type EventRow } from "./rows.js";

const SEQUENCE_SQL = `
WITH fence AS (
  UPDATE realtime.leader SET renewed_at = clock_timestamp() WHERE pid = pg_backend_pid() RETURNING 1
), picked AS (
  SELECT id, ticket_id FROM realtime.ticket_events
  WHERE seq IS NULL AND EXISTS (SELECT 1 FROM fence)
  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), numbered AS (
  SELECT id, ticket_id, row_number() OVER (PARTITION BY ticket_id ORDER BY id) AS n, count(*) OVER (PARTITION BY ticket_id) AS c
  FROM picked
), heads AS (
  INSERT INTO realtime.ticket_heads AS h (ticket_id, last_seq)
  SELECT ticket_id, count(*) FROM picked GROUP BY ticket_id
  ON CONFLICT (ticket_id) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
  RETURNING h.ticket_id, h.last_seq
)
UPDATE realtime.ticket_events e SET seq = heads.last_seq - numbered.c + numbered.n
FROM numbered JOIN heads USING (ticket_id)
WHERE e.id = numbered.id
RETURNING e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at`;

/** Evictions are re-read this far back: a transaction may commit well after it stamped evicted_at. */
export const EVICTION_OVERLAP_MS = 120_000;
/** The leader's fast path re-reads only this far behind the newest eviction it published. */
const FAST_OVERLAP_MS = 5000;

export interface DispatcherOptions {
  bus: DeliveryBus;
  retention: Retention;
  logger: Logger;
  metrics: Metrics;
  /** @default 500 */
  batchSize?: number;
}

export function createDispatcher({ bus, retention, logger, metrics, batchSize = 500 }: DispatcherOptions) {
  const log = logger.child({ component: "dispatcher" });
  let evictionsDue = true;
  let newestEviction: number | undefined;

  /** A read-only look at the queue: the idle poll costs one index probe, not a write. */
  async function pending(session: pg.Client): Promise<boolean> {
    const { rows } = await session.query("SELECT 1 FROM realtime.ticket_events WHERE seq IS NULL LIMIT 1");
    return rows.length > 0;
  }

  async function sequenceBatch(session: pg.Client): Promise<number> {
    const { rows } = await session.query<EventRow>(SEQUENCE_SQL, [batchSize]);
    if (rows.length === 0) return 0;
    const updates = rows.map(toUpdate).sort((a, b) => Number(a.id) - Number(b.id));
    const now = Date.now();
    for (const update of updates) metrics.dispatchLatency.observe(Math.max(0, now - Date.parse(update.at)) / 1000);
    metrics.updatesEmitted.inc(updates.length);
    bus.publish(updates);
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
      if (await pending(session)) while ((await sequenceBatch(session)) === batchSize);
      if (evictionsDue) await publishEvictions(session);
      await retention.maybePrune(session);
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
      bus.publish([raw satisfies TicketUpdate]);
    },
  };
}
