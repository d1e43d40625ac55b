/**
 * The elected listener. Every instance runs one; at most one leads.
 *
 * Leadership is a PostgreSQL session advisory lock held by the listener's own connection, so it
 * lives and dies with that session: a killed leader frees it at once, a partitioned one when the
 * server's TCP keepalive/user timeout fires. The leader LISTENs on the same session and dispatches
 * from `realtime.pending_dispatch` in id order inside a transaction on that session (emit, delete,
 * commit): if leadership is lost mid-batch the delete never commits and the next leader re-emits
 * the batch (clients drop seqs they have seen). NOTIFY is only a wake-up; a 1 s poll is the safety
 * net and doubles as the heartbeat that notices a dead connection.
 */
import type pg from "pg";
import { z } from "zod";
import { coerceError } from "../errors.js";
import { backoffMs, sleep } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { TicketUpdate } from "../protocol.js";
import { toUpdate } from "./event-store.js";
import { createClient } from "./pool.js";
import { quoteIdent } from "./sql.js";

/** What the listener needs from the gateway. */
export interface Dispatcher {
  emitUpdate(update: TicketUpdate): void;
  evict(ticketId: string, userId: string, reason: string): void;
  /** false while an emit could not reach the other instances (Redis down): events wait in the queue */
  canDispatch(): boolean;
}

export interface ListenerOptions {
  connectionString: string;
  channel: string;
  retentionMs: number;
  logger: Logger;
  metrics: Metrics;
  dispatcher: Dispatcher;
  /** @default 1000 */
  pollMs?: number;
  /** @default 500 */
  batchSize?: number;
}

/** pg_try_advisory_lock key of the leader ("realtime" in ASCII). */
export const LEADER_LOCK = "8243122717425315173";
const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 1000;

const rawNotification = z.object({
  ticketId: z.union([z.string().min(1).max(128), z.number().int()]).transform(String),
  type: z.string().min(1).max(200),
  data: z.unknown().optional(),
});

interface PendingRow {
  id: string;
  ticket_id: string;
  seq: string;
  type: string;
  data: unknown;
  created_at: Date;
}

export class Listener {
  private stopped = false;
  private leader = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private dirty = true;
  private lastPrune = 0;
  private pruneWaiters: Array<() => void> = [];
  private readonly pollMs: number;
  private readonly batchSize: number;
  private readonly log: Logger;

  constructor(private readonly options: ListenerOptions) {
    this.pollMs = options.pollMs ?? 1000;
    this.batchSize = options.batchSize ?? 500;
    this.log = options.logger.child({ component: "listener" });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    this.loop ??= this.campaign();
  }

  /** Give up leadership (another instance takes over within a poll) and close the session. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /** Wake the dispatch loop now (a NOTIFY, or Redis coming back). */
  poke(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async campaign(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const client = createClient(this.options.connectionString, "realtime-gateway-listener");
      let failure: Error | undefined;
      client.on("error", (error) => {
        failure ??= error;
        this.wake?.();
      });
      client.on("notification", (message) => this.onNotification(message));
      try {
        await client.connect();
        this.options.metrics.listenerConnected.set(1);
        this.log.info({ dependency: "postgres", up: true }, "postgres up (listener session connected)");
        // let the server notice a vanished leader in seconds, freeing the lock for a standby
        await client.query("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000");
        attempt = 0;
        while (!this.stopped && !failure) {
          if (!this.leader) await this.tryLead(client);
          if (this.leader) await this.dispatchAll(client);
          else await this.idle(this.pollMs / 2 + Math.random() * this.pollMs);
          if (failure) break;
          if (this.leader && !this.dirty) await this.idle(this.pollMs);
          this.dirty = true;
        }
        if (failure) throw failure;
      } catch (error) {
        if (!this.stopped) {
          const delay = backoffMs(attempt++, 250, 5000);
          this.log.warn({ err: coerceError(error).message, retryInMs: delay, dependency: "postgres", up: false }, "listener connection lost");
          this.abdicate("connection lost");
          this.options.metrics.listenerConnected.set(0);
          await client.end().catch(() => undefined);
          await this.idle(delay);
          continue;
        }
      }
      await this.resign(client);
    }
  }

  private async tryLead(client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK]);
    if (!rows[0]?.ok) return;
    await client.query(`LISTEN ${quoteIdent(this.options.channel)}`);
    this.leader = true;
    this.dirty = true;
    this.options.metrics.listenerLeader.set(1);
    this.log.info({ channel: this.options.channel }, "elected listener leader");
  }

  private abdicate(reason: string): void {
    if (!this.leader) return;
    this.leader = false;
    this.options.metrics.listenerLeader.set(0);
    this.log.info({ reason }, "listener leadership lost");
  }

  private async resign(client: pg.Client): Promise<void> {
    if (this.leader) {
      await client.query("UNLISTEN *").catch(() => undefined);
      await client.query("SELECT pg_advisory_unlock($1)", [LEADER_LOCK]).catch(() => undefined);
      this.abdicate("stopping");
    }
    this.options.metrics.listenerConnected.set(0);
    await client.end().catch(() => undefined);
  }

  private idle(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private onNotification(message: pg.Notification): void {
    if (message.channel !== this.options.channel || !this.leader) return;
    if (!message.payload) return this.poke();
    this.emitRaw(message.payload);
  }

  /** The MVP's raw `NOTIFY ticket_updates, '{"ticketId":…}'`: best-effort, `seq: null`. */
  private emitRaw(payload: string): void {
    let parsed: z.infer<typeof rawNotification> | undefined;
    try {
      const result = rawNotification.safeParse(JSON.parse(payload));
      if (result.success) parsed = result.data;
    } catch {
      // not JSON: counted below
    }
    if (!parsed || !/^[A-Za-z0-9_.:@-]{1,128}$/.test(parsed.ticketId)) {
      this.options.metrics.malformedNotifications.inc();
      this.log.warn({ payload: payload.slice(0, 200) }, "malformed raw notification ignored");
      return;
    }
    this.options.dispatcher.emitUpdate({
      ticketId: parsed.ticketId,
      seq: null,
      id: null,
      type: parsed.type,
      data: parsed.data ?? null,
      at: new Date().toISOString(),
    });
    this.options.metrics.updatesEmitted.inc();
  }

  /** Emit and delete pending events batch by batch until the queue is empty. */
  private async dispatchAll(client: pg.Client): Promise<void> {
    this.dirty = false;
    if (!this.options.dispatcher.canDispatch()) return;
    while (!this.stopped) {
      const more = await this.dispatchBatch(client);
      if (!more) break;
    }
    if (this.pruneWaiters.length > 0 || Date.now() - this.lastPrune >= PRUNE_EVERY_MS) {
      const waiters = this.pruneWaiters.splice(0);
      await this.prune(client);
      for (const resolve of waiters) resolve();
    }
  }

  private async dispatchBatch(client: pg.Client): Promise<boolean> {
    const { dispatcher, metrics } = this.options;
    await client.query("BEGIN");
    try {
      const { rows } = await client.query<PendingRow>(
        `SELECT e.id, e.ticket_id, e.seq, e.type, e.data, e.created_at
         FROM realtime.pending_dispatch p JOIN realtime.ticket_events e ON e.id = p.event_id
         ORDER BY p.event_id LIMIT $1 FOR UPDATE OF p SKIP LOCKED`,
        [this.batchSize],
      );
      const evictions = await client.query<{ ticket_id: string; user_id: string }>(
        `UPDATE realtime.evictions SET dispatched = true WHERE NOT dispatched RETURNING ticket_id, user_id`,
      );
      const now = Date.now();
      for (const row of rows) {
        dispatcher.emitUpdate(toUpdate(row.ticket_id, row));
        metrics.updatesEmitted.inc();
        // the delivering instances observe gateway_ticket_update_latency_seconds (src/observability)
        metrics.dispatchLatency.observe(Math.max(0, now - row.created_at.getTime()) / 1000);
      }
      for (const row of evictions.rows) dispatcher.evict(row.ticket_id, row.user_id, "evicted");
      if (rows.length > 0) {
        await client.query("DELETE FROM realtime.pending_dispatch WHERE event_id = ANY($1::bigint[])", [rows.map((r) => r.id)]);
      }
      await client.query("COMMIT");
      return rows.length === this.batchSize;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  }

  /** Delete events older than EVENT_RETENTION in small batches, never one still waiting to be emitted. */
  private async prune(client: pg.Client): Promise<void> {
    this.lastPrune = Date.now();
    let total = 0;
    for (;;) {
      const { rowCount } = await client.query(
        `DELETE FROM realtime.ticket_events WHERE id IN (
           SELECT e.id FROM realtime.ticket_events e
           WHERE e.created_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000)
             AND NOT EXISTS (SELECT 1 FROM realtime.pending_dispatch p WHERE p.event_id = e.id)
           ORDER BY e.created_at LIMIT $2)`,
        [this.options.retentionMs, PRUNE_BATCH],
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_BATCH || this.stopped) break;
      await sleep(10);
    }
    await client.query(
      `DELETE FROM realtime.evictions WHERE dispatched AND evicted_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000)`,
      [this.options.retentionMs],
    );
    if (total > 0) this.log.info({ pruned: total }, "pruned events past retention");
  }

  /** Ask the leader to prune at its next turn; resolves once it has (never, on a standby). */
  pruneNow(): Promise<void> {
    return new Promise((resolve) => {
      this.pruneWaiters.push(resolve);
      this.poke();
    });
  }
}
