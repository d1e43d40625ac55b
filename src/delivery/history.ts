/**
 * Reads of the outbox, the source of truth every repair comes from: a subscriber's history
 * (coalesced per ticket), a range of seqs for a repair (paged, no row cap), the heads of many
 * tickets in one query (reconciliation) and the recent evictions.
 */
import type pg from "pg";
import type { TicketUpdate } from "../protocol.js";
import { toUpdate, type EventRow } from "./rows.js";

/** Beyond this many missed events a subscriber is told to reload (`recovered: false`). */
export const MAX_REPLAY = 1000;
/** Rows per page of a repair read. */
export const REPAIR_PAGE = 1000;

/** What PostgreSQL holds for a subscriber: the head, and the events after its sinceSeq. */
export interface HistoryView {
  head: number;
  /** events after sinceSeq up to head, in seq order (empty when not recovered) */
  events: TicketUpdate[];
  /** false when the events after sinceSeq are no longer retained, or too many to replay */
  recovered: boolean;
}

export interface Eviction {
  ticketId: string;
  userId: string;
  /** ms since the epoch */
  evictedAt: number;
}

type Queryable = Pick<pg.Pool, "query"> | Pick<pg.Client, "query">;

/** A subscriber's history: the head, and the events after sinceSeq (at most maxReplay of them). */
export const HISTORY_SQL = `
SELECT h.last_seq, e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at
FROM (SELECT coalesce(max(last_seq), 0) AS last_seq FROM realtime.ticket_heads WHERE ticket_id = $1) h
LEFT JOIN LATERAL (
  SELECT id, ticket_id, seq, type, data, created_at FROM realtime.ticket_events
  WHERE ticket_id = $1 AND seq > greatest($2::bigint, h.last_seq - $3) AND seq <= h.last_seq
  ORDER BY seq
) e ON true
ORDER BY e.seq`;

/** A repair's page: one ticket's events in a seq range. */
export const RANGE_SQL = `
SELECT id, ticket_id, seq, type, data, created_at FROM realtime.ticket_events
WHERE ticket_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`;

/** Reconciliation: the heads of many tickets, by primary key. */
export const HEADS_SQL = "SELECT ticket_id, last_seq FROM realtime.ticket_heads WHERE ticket_id = ANY($1::text[])";

interface Waiter {
  sinceSeq: number | undefined;
  resolve: (view: HistoryView) => void;
  reject: (error: unknown) => void;
}

function viewFor(sinceSeq: number | undefined, head: number, events: TicketUpdate[], maxReplay: number): HistoryView {
  if (sinceSeq === undefined || sinceSeq === head) return { head, events: [], recovered: true };
  if (sinceSeq > head || head - sinceSeq > maxReplay) return { head, events: [], recovered: false };
  const missed = events.filter((event) => event.seq! > sinceSeq);
  // pruned events leave a hole at the front: the client cannot be brought up to date incrementally
  const complete = missed.length === head - sinceSeq && missed[0]?.seq === sinceSeq + 1;
  return complete ? { head, events: missed, recovered: true } : { head, events: [], recovered: false };
}

export interface History {
  /** head and events after sinceSeq; concurrent reads of one ticket share a query */
  view(ticketId: string, sinceSeq: number | undefined): Promise<HistoryView>;
  /** events with afterSeq < seq <= upToSeq, at most REPAIR_PAGE of them, in seq order */
  range(ticketId: string, afterSeq: number, upToSeq: number): Promise<TicketUpdate[]>;
  /** the head of every ticket that has one */
  heads(ticketIds: string[]): Promise<Map<string, number>>;
  /** evictions of the last `withinMs` (PostgreSQL's clock) of these tickets */
  recentEvictions(withinMs: number, ticketIds: string[]): Promise<Eviction[]>;
}

export function createHistory(pool: pg.Pool, maxReplay = MAX_REPLAY): History {
  const queued = new Map<string, Waiter[]>();
  const running = new Set<string>();

  async function run(ticketId: string): Promise<void> {
    running.add(ticketId);
    try {
      while (queued.has(ticketId)) {
        const waiters = queued.get(ticketId)!;
        queued.delete(ticketId);
        const lowest = Math.min(...waiters.map((w) => w.sinceSeq ?? Number.MAX_SAFE_INTEGER));
        try {
          const { rows } = await pool.query<EventRow & { last_seq: string }>(HISTORY_SQL, [ticketId, String(lowest), maxReplay]);
          const head = Number(rows[0]?.last_seq ?? 0);
          const events = rows.filter((row) => row.id !== null).map(toUpdate);
          for (const waiter of waiters) waiter.resolve(viewFor(waiter.sinceSeq, head, events, maxReplay));
        } catch (error) {
          for (const waiter of waiters) waiter.reject(error);
        }
      }
    } finally {
      running.delete(ticketId);
    }
  }

  return {
    view(ticketId, sinceSeq) {
      return new Promise<HistoryView>((resolve, reject) => {
        const waiters = queued.get(ticketId);
        if (waiters) waiters.push({ sinceSeq, resolve, reject });
        else queued.set(ticketId, [{ sinceSeq, resolve, reject }]);
        if (!running.has(ticketId)) void run(ticketId);
      });
    },
    async range(ticketId, afterSeq, upToSeq) {
      const { rows } = await pool.query<EventRow>(RANGE_SQL, [ticketId, afterSeq, upToSeq, REPAIR_PAGE]);
      return rows.map(toUpdate);
    },
    async heads(ticketIds) {
      const { rows } = await pool.query<{ ticket_id: string; last_seq: string }>(HEADS_SQL, [ticketIds]);
      return new Map(rows.map((row) => [row.ticket_id, Number(row.last_seq)]));
    },
    recentEvictions: (withinMs, ticketIds) => readEvictions(pool, { withinMs, ticketIds }),
  };
}

export interface EvictionQuery {
  /** only those stamped within this long of PostgreSQL's now */
  withinMs: number;
  /** only those stamped after this time (ms since the epoch, from an earlier row) */
  after?: number;
  /** only those of these tickets */
  ticketIds?: string[];
}

export async function readEvictions(db: Queryable, { withinMs, after, ticketIds }: EvictionQuery): Promise<Eviction[]> {
  const { rows } = await db.query<{ ticket_id: string; user_id: string; evicted_at: Date }>(
    `SELECT ticket_id, user_id, evicted_at FROM realtime.evictions
     WHERE evicted_at >= clock_timestamp() - make_interval(secs => $1::double precision / 1000)
       AND ($2::timestamptz IS NULL OR evicted_at > $2) AND ($3::text[] IS NULL OR ticket_id = ANY($3))
     ORDER BY evicted_at`,
    [withinMs, after === undefined ? null : new Date(after), ticketIds ?? null],
  );
  return rows.map((row) => ({ ticketId: row.ticket_id, userId: row.user_id, evictedAt: row.evicted_at.getTime() }));
}
