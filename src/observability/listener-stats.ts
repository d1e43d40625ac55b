/**
 * Leader health read from PostgreSQL when Prometheus scrapes: the unsequenced backlog, the
 * age of its oldest event, and `pg_notification_queue_usage()`.
 *
 * Every instance reads them, not only the leader: the backlog matters most exactly when no
 * instance leads (or the leader is stuck), and then a leader-only gauge would read 0. The query
 * is two lookups of a partial index that is empty when healthy, once per scrape per
 * instance; scrapes within `cacheMs` of each other share it. Read them with `max()` across
 * instances.
 */
import type pg from "pg";
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";

export interface ListenerStats {
  backlog: number;
  oldestAgeSeconds: number;
  notificationQueueUsage: number;
}

const STATS_SQL = `
  SELECT (SELECT count(*) FROM realtime.ticket_events WHERE seq IS NULL)::float8 AS backlog,
         coalesce((SELECT extract(epoch FROM clock_timestamp() - created_at)
                   FROM realtime.ticket_events WHERE seq IS NULL ORDER BY id LIMIT 1), 0)::float8 AS oldest_age,
         pg_notification_queue_usage()::float8 AS queue_usage`;

export async function readListenerStats(pool: pg.Pool, timeoutMs = 2000): Promise<ListenerStats> {
  const { rows } = await withTimeout(
    pool.query<{ backlog: number; oldest_age: number; queue_usage: number }>(STATS_SQL),
    timeoutMs,
    "listener stats query",
  );
  const row = rows[0]!;
  return { backlog: row.backlog, oldestAgeSeconds: Math.max(0, row.oldest_age), notificationQueueUsage: row.queue_usage };
}

/** Fill the three gauges from one shared query whenever the registry is collected. */
export function collectListenerStats(pool: pg.Pool, metrics: Metrics, logger: Logger, cacheMs = 500): void {
  let pending: Promise<ListenerStats | undefined> | undefined;
  let readAt = 0;
  const read = (): Promise<ListenerStats | undefined> => {
    if (pending && Date.now() - readAt < cacheMs) return pending;
    readAt = Date.now();
    pending = readListenerStats(pool).catch((error: unknown) => {
      // keep the last values: the postgres alerts (gateway_listener_connected) cover an outage
      logger.debug({ err: coerceError(error), dependency: "postgres" }, "listener stats unavailable");
      return undefined;
    });
    return pending;
  };
  const gauges = [
    [metrics.listenerBacklog, (s: ListenerStats) => s.backlog],
    [metrics.listenerOldestPendingAge, (s: ListenerStats) => s.oldestAgeSeconds],
    [metrics.pgNotificationQueueUsage, (s: ListenerStats) => s.notificationQueueUsage],
  ] as const;
  for (const [gauge, pick] of gauges) {
    // prom-client calls `collect` before reading a metric; `get()` awaits it
    (gauge as unknown as { collect: () => Promise<void> }).collect = async () => {
      const stats = await read();
      if (stats) gauge.set(pick(stats));
    };
  }
}
