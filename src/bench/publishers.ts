/**
 * The event sources of a load run, driven at a target rate. The gateway's is PostgreSQL
 * (`realtime.publish_ticket_event` from a pg pool, one autocommit statement = one transaction);
 * the bare baseline's is one control socket. Each records, per nonce, when its write was done:
 * for PostgreSQL the moment COMMIT returned to the writer.
 */
import pg from "pg";
import { LightClient } from "./light-client.js";

export interface Publisher {
  /** resolves with the time the event was committed (Date.now() on the writer) */
  publish(ticketId: string, nonce: number): Promise<number>;
  /** the highest seq of each ticket as the source knows it (for a fresh ticket: its event count) */
  committed(tickets: string[]): Promise<Record<string, number>>;
  concurrency: number;
  close(): Promise<void>;
}

export function createPgPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000, query_timeout: 30_000, idleTimeoutMillis: 30_000 });
  pool.on("error", (error) => process.stderr.write(`bench: pg pool error: ${error.message}\n`));
  return pool;
}

export function pgPublisher(url: string, concurrency: number): Publisher {
  const pool = createPgPool(url, concurrency);
  return {
    concurrency,
    async publish(ticketId, nonce) {
      await pool.query("SELECT realtime.publish_ticket_event($1, 'bench', $2::jsonb)", [ticketId, `{"b":${nonce}}`]);
      return Date.now();
    },
    async committed(tickets) {
      // the seq the gateway assigned is what clients see; the count is the same on the bench's fresh tickets
      const { rows } = await pool.query<{ ticket_id: string; n: string }>(
        "SELECT ticket_id, count(*) AS n FROM realtime.ticket_events WHERE ticket_id = ANY($1::text[]) GROUP BY 1",
        [tickets],
      );
      const out: Record<string, number> = {};
      for (const row of rows) out[row.ticket_id] = Number(row.n);
      return out;
    },
    close: () => pool.end(),
  };
}

/** the bare baseline's source: `bench:publish` on one socket to the first bare server; seqs counted here */
export async function barePublisher(url: string): Promise<Publisher> {
  const seqs = new Map<string, number>();
  const control = new LightClient(
    { tickets: [], urlIndex: 0 },
    { urls: [url], connectTimeoutMs: 10_000, onUpdate: () => undefined, onUnexpectedClose: () => undefined, onResumed: () => undefined },
  );
  await control.connect();
  return {
    concurrency: 256,
    async publish(ticketId, nonce) {
      const seq = (seqs.get(ticketId) ?? 0) + 1;
      seqs.set(ticketId, seq);
      // the broadcast leaves the server before its ack comes back: the send time is the "commit"
      const at = Date.now();
      await control.emit("bench:publish", { ticketId, seq, data: { b: nonce } });
      return at;
    },
    async committed(tickets) {
      return Object.fromEntries(tickets.map((t) => [t, seqs.get(t) ?? 0]));
    },
    async close() {
      control.close();
    },
  };
}

/** commit time per nonce, NaN until committed */
export class CommitLog {
  times = new Float64Array(1024).fill(NaN);
  next = 0;
  errors = 0;

  take(): number {
    const nonce = this.next++;
    if (nonce >= this.times.length) {
      const grown = new Float64Array(this.times.length * 2).fill(NaN);
      grown.set(this.times);
      this.times = grown;
    }
    return nonce;
  }
}

export interface LoadResult {
  issued: number;
  committed: number;
  errors: number;
  /** most events waiting for a free writer at once: the source could not keep the rate */
  maxBacklog: number;
  durationMs: number;
}

/** publish at `rate` events/s for `durationMs`, spreading nonces over `tickets` round-robin */
export async function driveLoad(options: {
  publisher: Publisher;
  log: CommitLog;
  tickets: string[];
  rate: number;
  durationMs: number;
  onError?: (error: unknown) => void;
  at?: { ms: number; run: () => void };
}): Promise<LoadResult> {
  const { publisher, log, tickets, rate, durationMs } = options;
  const started = Date.now();
  let issued = 0;
  let inFlight = 0;
  let committed = 0;
  let errors = 0;
  let maxBacklog = 0;
  let fired = false;
  const total = Math.round((rate * durationMs) / 1000);
  const pending = new Set<Promise<void>>();
  while (issued < total) {
    const elapsed = Date.now() - started;
    if (options.at && !fired && elapsed >= options.at.ms) {
      fired = true;
      options.at.run();
    }
    const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
    maxBacklog = Math.max(maxBacklog, due - issued - (publisher.concurrency - inFlight));
    while (issued < due && inFlight < publisher.concurrency) {
      const nonce = log.take();
      const ticketId = tickets[nonce % tickets.length]!;
      issued += 1;
      inFlight += 1;
      const task = publisher.publish(ticketId, nonce).then(
        (at) => {
          log.times[nonce] = at;
          committed += 1;
        },
        (error: unknown) => {
          errors += 1;
          log.errors += 1;
          options.onError?.(error);
        },
      );
      const tracked = task.finally(() => {
        inFlight -= 1;
        pending.delete(tracked);
      });
      pending.add(tracked);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(pending);
  return { issued, committed, errors, maxBacklog: Math.max(0, maxBacklog), durationMs: Date.now() - started };
}
