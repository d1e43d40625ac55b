/**
 * Reports the rows `watch_table` skipped (ticket id NULL or invalid, see migration 3): every
 * instance takes what is in `realtime.skipped_events` with DELETE ... SKIP LOCKED, so each row is
 * counted once in the cluster (the sum of `gateway_watch_skipped_rows_total` over instances) and
 * logged as one warning per table, operation and reason with an example value.
 */
import type pg from "pg";
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";

const TAKE = `
WITH taken AS (
  DELETE FROM realtime.skipped_events
   WHERE id IN (SELECT id FROM realtime.skipped_events ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
  RETURNING table_name, op, ticket_column, reason, ticket_value
)
SELECT table_name, op, ticket_column, reason, count(*)::int AS rows, min(ticket_value) AS example
  FROM taken GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4`;

export interface SkippedEventsOptions {
  pool: pg.Pool;
  metrics: Metrics;
  logger: Logger;
  /** @default 5000 */
  intervalMs?: number;
  /** rows per round. @default 1000 */
  batch?: number;
}

interface Group {
  table_name: string;
  op: string;
  ticket_column: string;
  reason: string;
  rows: number;
  example: string | null;
}

/** Start reporting; returns the stop function (waits for a round in flight). */
export function reportSkippedEvents(options: SkippedEventsOptions): () => Promise<void> {
  const { pool, metrics } = options;
  const logger = options.logger.child({ scope: "watch-table" });
  const batch = options.batch ?? 1000;
  let running: Promise<void> | undefined;
  let stopped = false;
  const round = async () => {
    let full = true;
    while (full && !stopped) {
      const { rows } = await pool.query<Group>(TAKE, [batch]);
      let taken = 0;
      for (const group of rows) {
        taken += group.rows;
        metrics.watchSkippedRows.inc(group.rows);
        logger.warn(
          { table: group.table_name, op: group.op, ticketColumn: group.ticket_column, reason: group.reason, rows: group.rows, example: group.example },
          "watch_table skipped rows: their ticket id is NULL or not a valid ticket id, so nothing was published for them",
        );
      }
      full = taken === batch;
    }
  };
  const tick = () => {
    running ??= round()
      .catch((error: unknown) => {
        const err = coerceError(error);
        // a database not migrated to version 3 yet has no table: nothing to report
        if ((err as { code?: string }).code !== "42P01") logger.warn({ err }, "reading realtime.skipped_events failed");
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, options.intervalMs ?? 5000);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
