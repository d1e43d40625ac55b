/**
 * What `realtime.evictions` says about re-subscription, without a query on the subscribe path.
 *
 * Every instance holds the (small: rows are pruned after EVENT_RETENTION) table in memory: loaded
 * at start, updated at once when a `ticket:evict` reaches the instance (`note`), and re-read every
 * `pollMs` as a safety net for a message lost in a Redis blip. Until the first load succeeds a
 * lookup asks PostgreSQL directly, so a fresh instance never lets an evicted user back in.
 */
import type pg from "pg";
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";

export interface EvictionRegistry {
  /** when `userId` was last evicted from `ticketId` (ms since the epoch), or undefined */
  evictedAt(ticketId: string, userId: string): Promise<number | undefined>;
  /** an eviction just reached this instance: apply it now, then read its exact time */
  note(ticketId: string, userId: string): void;
  close(): Promise<void>;
}

export interface EvictionRegistryOptions {
  pool: pg.Pool;
  logger: Logger;
  /** rows older than this are pruned by the listener, and forgotten here */
  retentionMs: number;
  /** @default 10000 */
  pollMs?: number;
}

// a transaction may commit an eviction some time after it stamped evicted_at: re-read that far back
const OVERLAP_MS = 120_000;
const key = (ticketId: string, userId: string) => `${ticketId}\u0000${userId}`;

export function createEvictionRegistry({ pool, logger, retentionMs, pollMs = 10_000 }: EvictionRegistryOptions): EvictionRegistry {
  const log = logger.child({ component: "evictions" });
  const known = new Map<string, number>();
  let loaded = false;
  let watermark = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  function remember(ticketId: string, userId: string, at: number): void {
    const k = key(ticketId, userId);
    if ((known.get(k) ?? -Infinity) < at) known.set(k, at);
  }

  async function refresh(): Promise<void> {
    const since = loaded ? new Date(watermark - OVERLAP_MS) : new Date(0);
    const { rows } = await pool.query<{ ticket_id: string; user_id: string; evicted_at: Date }>(
      "SELECT ticket_id, user_id, evicted_at FROM realtime.evictions WHERE evicted_at >= $1",
      [since],
    );
    for (const row of rows) {
      const at = row.evicted_at.getTime();
      remember(row.ticket_id, row.user_id, at);
      watermark = Math.max(watermark, at);
    }
    const horizon = Date.now() - retentionMs;
    for (const [k, at] of known) if (at < horizon) known.delete(k);
    loaded = true;
  }

  function poll(): void {
    if (closed) return;
    running = refresh()
      .catch((error: unknown) => log.warn({ err: coerceError(error).message, dependency: "postgres" }, "eviction refresh failed"))
      .finally(() => {
        if (!closed) timer = setTimeout(poll, pollMs);
      });
  }
  poll();

  return {
    async evictedAt(ticketId, userId) {
      if (loaded) return known.get(key(ticketId, userId));
      const { rows } = await pool.query<{ evicted_at: Date }>(
        "SELECT evicted_at FROM realtime.evictions WHERE ticket_id = $1 AND user_id = $2",
        [ticketId, userId],
      );
      const at = rows[0]?.evicted_at.getTime();
      const noted = known.get(key(ticketId, userId));
      return at === undefined ? noted : Math.max(at, noted ?? at);
    },
    note(ticketId, userId) {
      // now is a hair later than evicted_at: it refuses, for a moment, a token minted in between
      // (safe side); the exact time replaces it below. An eviction through gateway.evict() has no
      // row and keeps this time, on the instances that heard it.
      known.set(key(ticketId, userId), Date.now());
      pool
        .query<{ evicted_at: Date }>("SELECT evicted_at FROM realtime.evictions WHERE ticket_id = $1 AND user_id = $2", [ticketId, userId])
        .then(({ rows }) => {
          const at = rows[0]?.evicted_at.getTime();
          if (at !== undefined && at >= Date.now() - OVERLAP_MS) known.set(key(ticketId, userId), at);
        })
        .catch((error: unknown) => log.debug({ err: coerceError(error).message }, "eviction lookup failed"));
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
