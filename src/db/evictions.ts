/**
 * What `realtime.evictions` says about re-subscription, with memory that stays bounded however
 * many evictions accumulate.
 *
 * A subscribe asks "when was this user last evicted from this ticket?". The answer is read per
 * ticket on first need (one indexed query; concurrent asks share it) and kept for `ttlMs` (5 s) in an
 * LRU of at most `maxTickets` tickets. Evictions this instance hears of (their message, or the
 * reconciler's rounds) are noted at once in a second bounded map, so a cached ticket never hides
 * a newer eviction. A ticket with more than `rowsPerTicket` evictions is not cached whole: its
 * misses ask PostgreSQL per user.
 */
import type pg from "pg";
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";

export interface EvictionRegistry {
  /**
   * when `userId` was last evicted from `ticketId` (ms since the epoch), or undefined. `trustMs`:
   * how old a loaded ticket may be (default `ttlMs`); longer only where another path keeps it
   * fresh (a room the reconciler covers, see eviction-rule.ts)
   */
  evictedAt(ticketId: string, userId: string, trustMs?: number): Promise<number | undefined>;
  /** an eviction reached this instance; `at` is its evicted_at when known (else now) */
  note(ticketId: string, userId: string, at?: number): void;
  /** entries held in memory (tickets cached + noted evictions), for tests and metrics */
  size(): number;
  close(): Promise<void>;
}

export interface EvictionRegistryOptions {
  pool: pg.Pool;
  logger: Logger;
  /** @default 10000 */
  maxTickets?: number;
  /** @default 1000 */
  rowsPerTicket?: number;
  /**
   * How long a ticket's loaded evictions are trusted. Short: an eviction whose message was lost
   * and that no room of this instance reconciles is seen within this time. @default 5000
   */
  ttlMs?: number;
  /** @default 50000 */
  maxNoted?: number;
}

interface Entry {
  loadedAt: number;
  users: Map<string, number>;
  /** false: the ticket has more rows than were loaded */
  complete: boolean;
}

const key = (ticketId: string, userId: string) => `${ticketId}\u0000${userId}`;

export function createEvictionRegistry(options: EvictionRegistryOptions): EvictionRegistry {
  const { pool, logger, maxTickets = 10_000, rowsPerTicket = 1000, ttlMs = 5000, maxNoted = 50_000 } = options;
  const log = logger.child({ component: "evictions" });
  const tickets = new Map<string, Entry>();
  const loading = new Map<string, Promise<Entry>>();
  const noted = new Map<string, number>();

  function touch<K, V>(map: Map<K, V>, k: K, v: V, max: number): void {
    map.delete(k);
    map.set(k, v);
    if (map.size > max) map.delete(map.keys().next().value as K);
  }

  async function load(ticketId: string): Promise<Entry> {
    const { rows } = await pool.query<{ user_id: string; evicted_at: Date }>(
      "SELECT user_id, evicted_at FROM realtime.evictions WHERE ticket_id = $1 LIMIT $2",
      [ticketId, rowsPerTicket + 1],
    );
    const entry: Entry = {
      loadedAt: Date.now(),
      users: new Map(rows.slice(0, rowsPerTicket).map((row) => [row.user_id, row.evicted_at.getTime()])),
      complete: rows.length <= rowsPerTicket,
    };
    touch(tickets, ticketId, entry, maxTickets);
    return entry;
  }

  async function entryFor(ticketId: string, trustMs: number): Promise<Entry> {
    const cached = tickets.get(ticketId);
    if (cached && Date.now() - cached.loadedAt < trustMs) return cached;
    let pending = loading.get(ticketId);
    if (!pending) {
      pending = load(ticketId).finally(() => loading.delete(ticketId));
      loading.set(ticketId, pending);
    }
    return pending;
  }

  async function stored(ticketId: string, userId: string, trustMs: number): Promise<number | undefined> {
    const entry = await entryFor(ticketId, trustMs);
    const at = entry.users.get(userId);
    if (at !== undefined || entry.complete) return at;
    const { rows } = await pool.query<{ evicted_at: Date }>("SELECT evicted_at FROM realtime.evictions WHERE ticket_id = $1 AND user_id = $2", [
      ticketId,
      userId,
    ]);
    return rows[0]?.evicted_at.getTime();
  }

  return {
    async evictedAt(ticketId, userId, trustMs = ttlMs) {
      const fromDb = await stored(ticketId, userId, Math.max(ttlMs, trustMs));
      const heard = noted.get(key(ticketId, userId));
      if (fromDb === undefined) return heard;
      return heard === undefined ? fromDb : Math.max(fromDb, heard);
    },
    note(ticketId, userId, at) {
      const k = key(ticketId, userId);
      // without a time (gateway.evict() has no row), now is a hair later than any evicted_at: it
      // refuses, for a moment, a token minted in between (the safe side)
      const time = at ?? Date.now();
      if ((noted.get(k) ?? -Infinity) >= time) return;
      touch(noted, k, time, maxNoted);
      const entry = tickets.get(ticketId);
      if (entry && (entry.users.get(userId) ?? -Infinity) < time) entry.users.set(userId, time);
    },
    size: () => tickets.size + noted.size,
    async close() {
      await Promise.allSettled([...loading.values()]).catch((error: unknown) => log.debug({ err: coerceError(error) }, "eviction load failed at close"));
    },
  };
}
