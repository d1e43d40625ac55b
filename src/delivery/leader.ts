/**
 * Step 1 of an event's path: which instance reads the outbox. Every instance campaigns; one leads.
 *
 * Leadership is a PostgreSQL session advisory lock held by the leader's own session, plus a lease
 * row (`realtime.leader`) that session renews. The lock makes a crashed leader's exit free the
 * role at once; the lease covers what the lock cannot see: a leader that is alive to the kernel
 * (TCP keepalives answered) but not running (SIGSTOP, a long GC pause, a wedged event loop). A
 * standby that finds the lease expired ends the holder's session with `pg_terminate_backend`,
 * which drops its lock and rolls back whatever it had open, then takes the lock itself. A frozen
 * leader that wakes up finds its session gone: it cannot commit a sequencing batch, and what it
 * publishes from before the freeze is dropped by every instance as a duplicate seq.
 *
 * The leader LISTENs on the same session for the MVP's raw NOTIFY and for evictions; committed
 * events it finds by polling the outbox's queue every QUEUE_POLL_INTERVAL (writers send no NOTIFY:
 * PostgreSQL serializes the commits of every transaction that notifies).
 */
import type pg from "pg";
import { coerceError } from "../errors.js";
import { backoffMs } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { createClient } from "../db/pool.js";
import { quoteIdent } from "../db/sql.js";

/** pg_try_advisory_lock key of the leader ("realtime" in ASCII). */
export const LEADER_LOCK = "8243122717425315173";
const LOCK_HIGH = (BigInt(LEADER_LOCK) >> 32n).toString();
const LOCK_LOW = (BigInt(LEADER_LOCK) & 0xffffffffn).toString();

/** What the leader does while it leads; called on its own session. */
export interface LeaderDuties {
  /** one round of work after a wake-up or a poll; a throw ends the session (a standby takes over) */
  run(session: pg.Client): Promise<void>;
  /** a notification payload that is not the constant wake-up (the MVP's raw NOTIFY, evictions) */
  notified(payload: string): void;
  /** the lease was won on this session (the replication source starts streaming) */
  elected?(session: pg.Client): void;
  /** the lease was lost or given up (the replication source stops) */
  deposed?(): Promise<void>;
}

export interface LeaderOptions {
  connectionString: string;
  channel: string;
  instanceId: string;
  /** a leader that has not renewed for this long may be ended by a standby */
  leaseMs: number;
  logger: Logger;
  metrics: Metrics;
  duties: LeaderDuties;
  /** how often a standby tries for the role. @default 1000 */
  pollMs?: number;
  /** how often the leader runs its duties when nothing woke it (QUEUE_POLL_INTERVAL). @default 10 */
  leaderPollMs?: number;
}

const RENEW_SQL = "UPDATE realtime.leader SET renewed_at = clock_timestamp(), lease_ms = $1 WHERE pid = pg_backend_pid() RETURNING 1";
const CLAIM_SQL = `
INSERT INTO realtime.leader AS l (singleton, instance_id, pid, lease_ms, renewed_at)
VALUES (true, $1, pg_backend_pid(), $2, clock_timestamp())
ON CONFLICT (singleton) DO UPDATE SET instance_id = excluded.instance_id, pid = excluded.pid, lease_ms = excluded.lease_ms, renewed_at = excluded.renewed_at`;
// the lease holder is only ended while it really holds the lock: a stale row's pid may be reused
const EXPIRED_SQL = `
SELECT l.pid, l.instance_id FROM realtime.leader l
WHERE clock_timestamp() - l.renewed_at > make_interval(secs => l.lease_ms / 1000.0)
  AND EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.pid
              AND k.classid = $1::bigint::oid AND k.objid = $2::bigint::oid AND k.objsubid = 1)`;

export class Leader {
  private stopped = false;
  private leading = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private dirty = true;
  /** the duties' stop after the lease was lost (awaited before the session is closed on stop) */
  private deposing: Promise<void> | undefined;
  private renewedAt = 0;
  private readonly pollMs: number;
  private readonly log: Logger;

  constructor(private readonly options: LeaderOptions) {
    this.pollMs = options.pollMs ?? 1000;
    this.log = options.logger.child({ component: "leader" });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.campaign();
  }

  /** Give up leadership (a standby takes over within a poll) and close the session. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /** Run the duties now (a wake-up NOTIFY, or a caller that knows there is work). */
  poke(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async campaign(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const session = createClient(this.options.connectionString, "realtime-gateway-leader");
      let failure: Error | undefined;
      session.on("error", (error) => {
        failure ??= error;
        this.wake?.();
      });
      session.on("notification", (message) => this.onNotification(message));
      try {
        await session.connect();
        this.options.metrics.listenerConnected.set(1);
        this.log.info({ dependency: "postgres", up: true }, "postgres up (leader session connected)");
        // a vanished host is noticed in seconds, freeing the lock for a standby
        await session.query("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000");
        attempt = 0;
        while (!this.stopped && !failure) {
          if (!this.leading) await this.tryLead(session);
          if (this.leading) {
            await this.renewIfDue(session);
            this.dirty = false;
            await this.options.duties.run(session);
            if (!this.dirty && !failure) await this.idle(Math.min(this.options.leaderPollMs ?? 10, this.options.leaseMs / 3));
          } else {
            await this.endExpiredLeader(session);
            await this.idle(this.pollMs / 2 + Math.random() * this.pollMs);
          }
        }
        if (failure) throw failure;
      } catch (error) {
        if (!this.stopped) {
          const delay = backoffMs(attempt++, 250, 5000);
          this.log.warn({ err: coerceError(error), retryInMs: delay, dependency: "postgres", up: false }, "leader session lost");
          this.abdicate("session lost");
          this.options.metrics.listenerConnected.set(0);
          await session.end().catch(() => undefined);
          await this.idle(delay);
          continue;
        }
      }
      await this.resign(session);
    }
  }

  private async tryLead(session: pg.Client): Promise<void> {
    const { rows } = await session.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK]);
    if (!rows[0]?.ok) return;
    await session.query(CLAIM_SQL, [this.options.instanceId, this.options.leaseMs]);
    await session.query(`LISTEN ${quoteIdent(this.options.channel)}`);
    this.renewedAt = Date.now();
    this.leading = true;
    this.dirty = true;
    this.options.metrics.listenerLeader.set(1);
    this.log.info({ channel: this.options.channel, leaseMs: this.options.leaseMs }, "elected listener leader");
    this.options.duties.elected?.(session);
  }

  private async renewIfDue(session: pg.Client): Promise<void> {
    if (Date.now() - this.renewedAt < this.options.leaseMs / 3) return;
    const { rowCount } = await session.query(RENEW_SQL, [this.options.leaseMs]);
    // another session holds the lease although this one holds the lock: only a manual edit does that
    if (!rowCount) await session.query(CLAIM_SQL, [this.options.instanceId, this.options.leaseMs]);
    this.renewedAt = Date.now();
  }

  /** A standby's turn: end a leader whose lease ran out while it still holds the lock. */
  private async endExpiredLeader(session: pg.Client): Promise<void> {
    const { rows } = await session.query<{ pid: number; instance_id: string }>(EXPIRED_SQL, [LOCK_HIGH, LOCK_LOW]);
    const holder = rows[0];
    if (!holder) return;
    try {
      await session.query("SELECT pg_terminate_backend($1)", [holder.pid]);
      this.log.warn({ holder: holder.instance_id, pid: holder.pid }, "ended the session of a leader whose lease expired (frozen or partitioned)");
      this.poke();
    } catch (error) {
      // pg_terminate_backend needs the same role as the leader's session, or pg_signal_backend
      this.log.error({ err: coerceError(error), holder: holder.instance_id }, "could not end an expired leader's session");
    }
  }

  private abdicate(reason: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.options.metrics.listenerLeader.set(0);
    this.log.info({ reason }, "listener leadership lost");
    this.deposing = this.options.duties.deposed?.().catch(() => undefined);
  }

  private async resign(session: pg.Client): Promise<void> {
    if (this.leading) {
      // the duties stop first (the replication stream frees its slot), then the role is given up
      this.abdicate("stopping");
      await this.deposing;
      await session.query("DELETE FROM realtime.leader WHERE pid = pg_backend_pid()").catch(() => undefined);
      await session.query("UNLISTEN *").catch(() => undefined);
      await session.query("SELECT pg_advisory_unlock($1)", [LEADER_LOCK]).catch(() => undefined);
    }
    this.options.metrics.listenerConnected.set(0);
    await session.end().catch(() => undefined);
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
    if (message.channel !== this.options.channel || !this.leading) return;
    if (message.payload) this.options.duties.notified(message.payload);
    this.poke();
  }
}
