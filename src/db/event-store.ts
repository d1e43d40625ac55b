/**
 * History reads for `ticket:subscribe { sinceSeq }`, coalesced per ticket: while one query for a
 * ticket runs, every request that arrives waits for the next one, which serves them all. Each
 * request's read therefore starts after its room join, and N clients resuming one ticket at once
 * cost at most two queries.
 */
import type pg from "pg";
import type { EventStore, History } from "../events/types.js";
import type { TicketUpdate } from "../protocol.js";

/** Beyond this many missed events the client is told to reload (`recovered: false`). */
export const MAX_REPLAY = 1000;

interface Waiter {
  sinceSeq: number | undefined;
  resolve: (history: History) => void;
  reject: (error: unknown) => void;
}

interface Row {
  last_seq: string;
  id: string | null;
  seq: string | null;
  type: string | null;
  data: unknown;
  created_at: Date | null;
}

const HISTORY_SQL = `
SELECT h.last_seq, e.id, e.seq, e.type, e.data, e.created_at
FROM (SELECT coalesce(max(last_seq), 0) AS last_seq FROM realtime.ticket_seqs WHERE ticket_id = $1) h
LEFT JOIN LATERAL (
  SELECT id, seq, type, data, created_at FROM realtime.ticket_events
  WHERE ticket_id = $1 AND seq > greatest($2::bigint, h.last_seq - $3)
  ORDER BY seq
) e ON true
ORDER BY e.seq`;

export function toUpdate(ticketId: string, row: { id: string; seq: string; type: string; data: unknown; created_at: Date }): TicketUpdate {
  return { ticketId, seq: Number(row.seq), id: String(row.id), type: row.type, data: row.data, at: row.created_at.toISOString() };
}

export function createPgEventStore(pool: pg.Pool, maxReplay = MAX_REPLAY): EventStore {
  const queued = new Map<string, Waiter[]>();
  const running = new Set<string>();

  function settle(waiter: Waiter, head: number, events: TicketUpdate[]): void {
    const since = waiter.sinceSeq;
    if (since === undefined || since === head) return waiter.resolve({ seq: head, missed: [], recovered: true });
    if (since > head || head - since > maxReplay) return waiter.resolve({ seq: head, missed: [], recovered: false });
    const missed = events.filter((event) => event.seq! > since);
    // pruned events leave a hole at the front: the client cannot be brought up to date incrementally
    const complete = missed.length === head - since && missed[0]?.seq === since + 1;
    waiter.resolve(complete ? { seq: head, missed, recovered: true } : { seq: head, missed: [], recovered: false });
  }

  async function run(ticketId: string): Promise<void> {
    running.add(ticketId);
    try {
      while (queued.has(ticketId)) {
        const waiters = queued.get(ticketId)!;
        queued.delete(ticketId);
        const lowest = Math.min(...waiters.map((w) => w.sinceSeq ?? Number.MAX_SAFE_INTEGER));
        try {
          const { rows } = await pool.query<Row>(HISTORY_SQL, [ticketId, String(lowest), maxReplay]);
          const head = Number(rows[0]?.last_seq ?? 0);
          const events = rows.filter((row) => row.id !== null).map((row) => toUpdate(ticketId, row as never));
          for (const waiter of waiters) settle(waiter, head, events);
        } catch (error) {
          for (const waiter of waiters) waiter.reject(error);
        }
      }
    } finally {
      running.delete(ticketId);
    }
  }

  return {
    history(ticketId, sinceSeq) {
      return new Promise<History>((resolve, reject) => {
        const waiters = queued.get(ticketId);
        if (waiters) waiters.push({ sinceSeq, resolve, reject });
        else queued.set(ticketId, [{ sinceSeq, resolve, reject }]);
        if (!running.has(ticketId)) void run(ticketId);
      });
    },
  };
}

/** Events of `ticketIds` written since `since`, per ticket in seq order (outage replay). */
export async function readSince(pool: pg.Pool, ticketIds: string[], since: Date, limit = 10_000): Promise<TicketUpdate[]> {
  const { rows } = await pool.query<{ ticket_id: string; id: string; seq: string; type: string; data: unknown; created_at: Date }>(
    `SELECT ticket_id, id, seq, type, data, created_at FROM realtime.ticket_events
     WHERE ticket_id = ANY($1::text[]) AND created_at >= $2 ORDER BY ticket_id, seq LIMIT $3`,
    [ticketIds, since, limit],
  );
  return rows.map((row) => toUpdate(row.ticket_id, row));
}
