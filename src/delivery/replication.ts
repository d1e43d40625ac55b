/**
 * EVENT_SOURCE=replication: the leader reads the outbox's committed inserts through PostgreSQL
 * logical replication (`pgoutput`, a publication of `realtime.ticket_events` inserts and a
 * persistent slot, both named REPLICATION_SLOT) instead of polling the queue.
 *
 * Per committed transaction it collects the inserted ids, in commit order; the commits that
 * arrived in one tick are numbered by one fenced statement (`sequenceIds`, in the order received),
 * published, and the slot is acknowledged up to the last commit's end only after Redis accepted
 * the publish. Ids numbered already (a replay after a crash, or the queue sweep got there first)
 * are read back and published again; every ledger drops the duplicates. A failed publish is not
 * acknowledged: the stream restarts from the slot and publishes again (the reconcilers repair
 * meanwhile). The queue stays the truth: whatever the stream misses (a slot created after the
 * rows, a slot lost to max_slot_wal_keep_size) the leader's queue sweep numbers.
 *
 * The library (`pg-logical-replication`) runs the replication protocol on a `pg` connection and
 * decodes pgoutput; its automatic acknowledgement is off (it would confirm what was received, not
 * what was delivered), and so is its timer (it confirms the last received LSN).
 */
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from "pg-logical-replication";
import type pg from "pg";
import { coerceError } from "../errors.js";
import { backoffMs, sleep, withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { TicketUpdate } from "../protocol.js";
import { ensurePublication } from "../db/event-source.js";

/** One statement numbers at most this many ids (a replay after a long outage goes in parts). */
const MAX_IDS_PER_STATEMENT = 5000;
/** A publish Redis has not accepted after this long counts as failed (the stream restarts). */
const PUBLISH_TIMEOUT_MS = 3000;
/** Commits arriving within this long of the first one go into the same statement. */
const COALESCE_MS = 2;
/** How long the leader leaves the queue to a stream that is starting. */
const STARTING_MS = 2000;
/**
 * A replicated id that stays invisible this long is given up on (deleted, or pruned before a late
 * replay): the ids after it go on. Normally a commit is visible within a millisecond of its arrival.
 */
const GIVE_UP_MS = 2000;

export interface ReplicationOptions {
  connectionString: string;
  slot: string;
  logger: Logger;
  metrics: Metrics;
  /**
   * Number these ids (in this order) on the leader's session, fenced: the events of the first
   * `handled` of them (the rest are not visible yet; `givenUp` ids are skipped when missing).
   */
  sequence(session: pg.Client, ids: string[], givenUp: string[]): Promise<{ updates: TicketUpdate[]; handled: number }>;
  /** hand to the bus; resolves once Redis accepted it */
  publish(updates: TicketUpdate[]): Promise<void>;
  /** number whatever the queue holds (the slot did not exist, or was recreated) */
  sweep(session: pg.Client): Promise<void>;
}

interface Commit {
  ids: string[];
  /** the commit record's end: acknowledging it confirms this transaction and every one before */
  endLsn: string;
}

const SLOT_SQL = `
SELECT s.active_pid, s.wal_status, s.database, current_database() AS current
FROM pg_replication_slots s WHERE s.slot_name = $1`;

/** LSNs as numbers, to compare and to step back one byte (the library reports lsn + 1). */
export function lsnToBigInt(lsn: string): bigint {
  const [high, low] = lsn.split("/");
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export class ReplicationStream {
  private session: pg.Client | undefined;
  private service: LogicalReplicationService | undefined;
  private loop: Promise<void> | undefined;
  private stopped = true;
  private generation = 0;
  private wake: (() => void) | undefined;
  /** received, committed, not yet numbered and published */
  private pending: Commit[] = [];
  private current: string[] | undefined;
  private flushing = false;
  private ackedLsn: bigint = 0n;
  /** ids not visible yet when first numbered, and since when */
  private readonly invisibleSince = new Map<string, number>();
  /** the publishes in flight, in order: each acknowledgement waits for its own and every earlier one */
  private acks: Promise<void> = Promise.resolve();
  private inFlight = 0;
  /** streams that failed to number or publish: nothing more is acknowledged on them */
  private readonly broken = new WeakSet<LogicalReplicationService>();
  private streamingNow = false;
  /** when the current attempt to (re)start the stream began; undefined once it streams or failed */
  private startingSince: number | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ReplicationOptions) {
    this.log = options.logger.child({ component: "replication", slot: options.slot });
  }

  /** true while the stream delivers (the leader then only sweeps the queue now and then) */
  get streaming(): boolean {
    return this.streamingNow;
  }

  /**
   * true for a moment while the stream (re)starts: the leader leaves the queue to it, so what was
   * committed while no leader ran is numbered from the slot, in commit order. Past STARTING_MS,
   * or once an attempt failed, the leader polls the queue.
   */
  get starting(): boolean {
    return this.startingSince !== undefined && Date.now() - this.startingSince < STARTING_MS;
  }

  /** Start (or restart on a new session) after winning the lease. */
  start(session: pg.Client): void {
    this.session = session;
    this.stopped = false;
    const generation = ++this.generation;
    const previous = this.loop ?? Promise.resolve();
    this.loop = previous.then(() => this.run(generation));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    this.streamingNow = false;
    this.wake?.();
    await this.service?.stop().catch(() => undefined);
    await this.loop;
  }

  private live(generation: number): boolean {
    return !this.stopped && generation === this.generation;
  }

  private async run(generation: number): Promise<void> {
    let attempt = 0;
    while (this.live(generation)) {
      const session = this.session!;
      const service = new LogicalReplicationService(
        { connectionString: this.options.connectionString, application_name: "realtime-gateway-replication", keepAlive: true },
        { acknowledge: { auto: false, timeoutSeconds: 0 } },
      );
      this.service = service;
      let failure: Error | undefined;
      const ended = new Promise<void>((resolve) => (this.wake = resolve));
      service.on("error", (error: unknown) => {
        failure ??= coerceError(error);
        this.wake?.();
      });
      this.startingSince = Date.now();
      try {
        const created = await this.prepare(session);
        if (created) await this.options.sweep(session);
        if (!this.live(generation)) break;
        this.pending = [];
        this.acks = Promise.resolve();
        this.inFlight = 0;
        this.invisibleSince.clear();
        this.current = undefined;
        this.ackedLsn = 0n;
        service.on("data", (lsn: string, message: Pgoutput.Message) => this.onMessage(service, generation, lsn, message));
        service.on("heartbeat", (lsn: string, _time: number, shouldRespond: boolean) => this.onHeartbeat(service, lsn, shouldRespond));
        service.on("start", () => {
          this.streamingNow = true;
          this.startingSince = undefined;
          attempt = 0;
          this.log.info("replication stream started");
        });
        const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.slot] });
        const subscribed = service.subscribe(plugin, this.options.slot).then(
          () => undefined,
          (error: unknown) => void (failure ??= coerceError(error)),
        );
        await Promise.race([subscribed, ended]);
        if (!failure && this.live(generation)) failure = new Error("replication stream ended");
      } catch (error) {
        failure ??= coerceError(error);
      }
      this.streamingNow = false;
      this.startingSince = undefined;
      // whatever is still in flight on this stream is not acknowledged on it: the next one replays it
      this.broken.add(service);
      await service.stop().catch(() => undefined);
      service.removeAllListeners();
      if (!this.live(generation)) break;
      const delay = backoffMs(attempt++, 200, 5000);
      this.options.metrics.replicationRestarts.inc();
      this.log.warn({ err: failure, retryInMs: delay }, "replication stream ended; the queue is polled until it is back");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * On the leader's session: the publication and the slot exist, the slot is usable (a lost one
   * is dropped and recreated) and no walsender holds it (a frozen ex-leader's is ended).
   * Returns true when the slot was created (rows committed before it are only in the queue).
   */
  private async prepare(session: pg.Client): Promise<boolean> {
    const slot = this.options.slot;
    // only the lease holder may end another session's walsender
    const { rowCount } = await session.query("SELECT 1 FROM realtime.leader WHERE pid = pg_backend_pid()");
    if (!rowCount) throw new Error("not the lease holder");
    await ensurePublication(session, slot);
    const { rows } = await session.query<{ active_pid: number | null; wal_status: string | null; database: string | null; current: string }>(SLOT_SQL, [slot]);
    let row = rows[0];
    if (row && row.database !== row.current) throw new Error(`replication slot ${slot} belongs to database ${row.database}; set REPLICATION_SLOT to a name of its own`);
    if (row?.active_pid) await this.endHolder(session, row.active_pid);
    if (row && row.wal_status === "lost") {
      this.log.warn({ walStatus: row.wal_status }, "replication slot invalidated (max_slot_wal_keep_size): dropping and recreating it; the queue sweep numbers what it missed");
      await session.query("SELECT pg_drop_replication_slot($1)", [slot]);
      row = undefined;
    }
    if (row) return false;
    try {
      await session.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    } catch (error) {
      if ((error as { code?: string }).code !== "42710") throw error;
    }
    this.log.info({ created: true }, "replication slot created");
    return true;
  }

  /** A walsender still streams the slot: a frozen ex-leader's. End it and wait for the slot to free. */
  private async endHolder(session: pg.Client, pid: number): Promise<void> {
    await session.query("SELECT pg_terminate_backend($1)", [pid]);
    this.log.warn({ pid }, "ended the walsender still holding the replication slot (an ex-leader's)");
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { rows } = await session.query<{ active_pid: number | null }>("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [this.options.slot]);
      if (!rows[0]?.active_pid) return;
      if (Date.now() > deadline) throw new Error(`the walsender ${pid} still holds the replication slot`);
      await sleep(50);
    }
  }

  private onMessage(service: LogicalReplicationService, generation: number, lsn: string, message: Pgoutput.Message): void {
    if (!this.live(generation)) return;
    switch (message.tag) {
      case "begin":
        this.current = [];
        break;
      case "insert":
        if (message.relation.schema === "realtime" && message.relation.name === "ticket_events") this.current?.push(String(message.new.id));
        break;
      case "commit": {
        const ids = this.current ?? [];
        this.current = undefined;
        const endLsn = message.commitEndLsn ?? lsn;
        if (ids.length === 0) {
          if (this.idle()) this.acknowledge(service, lsnToBigInt(endLsn));
          break;
        }
        this.pending.push({ ids, endLsn });
        this.schedule(service, generation);
        break;
      }
      default:
        break;
    }
  }

  /** The server asks for our position: report what is delivered; when idle, everything sent is. */
  private onHeartbeat(service: LogicalReplicationService, lsn: string, shouldRespond: boolean): void {
    if (this.idle()) this.acknowledge(service, lsnToBigInt(lsn));
    else if (shouldRespond) this.acknowledge(service, this.ackedLsn, true);
  }

  /** streaming, and nothing received waits to be numbered or published (a replay is not running) */
  get caughtUp(): boolean {
    return this.streamingNow && this.idle();
  }

  /** nothing received is waiting to be numbered or published */
  private idle(): boolean {
    return this.pending.length === 0 && !this.flushing && this.current === undefined && this.inFlight === 0;
  }

  private acknowledge(service: LogicalReplicationService, lsn: bigint, force = false): void {
    if (this.broken.has(service)) return;
    if (lsn <= this.ackedLsn && !force) return;
    if (lsn > this.ackedLsn) this.ackedLsn = lsn;
    if (this.ackedLsn === 0n) return;
    // the library reports lsn + 1 as flushed; the confirmed position is the commit's end exactly
    void service.acknowledge(bigIntToLsn(this.ackedLsn - 1n)).catch(() => undefined);
  }

  /**
   * Coalesce the commits that arrive within COALESCE_MS (and while a statement runs) into one
   * statement: one statement per commit cost the leader and PostgreSQL more CPU than the poll saved.
   */
  private schedule(service: LogicalReplicationService, generation: number): void {
    if (this.flushing) return;
    this.flushing = true;
    setTimeout(() => void this.flush(service, generation), COALESCE_MS);
  }

  private async flush(service: LogicalReplicationService, generation: number): Promise<void> {
    try {
      while (this.pending.length > 0 && this.live(generation) && !this.broken.has(service)) {
        const batch: Commit[] = [];
        let count = 0;
        while (this.pending.length > 0 && (batch.length === 0 || count + this.pending[0]!.ids.length <= MAX_IDS_PER_STATEMENT)) {
          const commit = this.pending.shift()!;
          batch.push(commit);
          count += commit.ids.length;
        }
        const ids = batch.flatMap((commit) => commit.ids);
        const now = Date.now();
        const givenUp = ids.filter((id) => now - (this.invisibleSince.get(id) ?? now) >= GIVE_UP_MS);
        if (givenUp.length > 0) this.log.warn({ ids: givenUp }, "replicated events never became visible (deleted?); skipped");
        this.log.trace({ ids }, "numbering replicated ids");
        const { updates, handled } = await this.options.sequence(this.session!, ids, givenUp);
        if (!this.live(generation)) return;
        this.options.metrics.replicationEvents.inc(updates.length);
        // the commits wholly handled; the rest (from the first invisible id on) go back, in order
        let done = 0;
        let covered = 0;
        while (done < batch.length && covered + batch[done]!.ids.length <= handled) covered += batch[done++]!.ids.length;
        const rest = batch.slice(done);
        if (rest.length > 0) {
          rest[0] = { ...rest[0]!, ids: rest[0]!.ids.slice(handled - covered) };
          const first = rest[0].ids[0]!;
          if (!this.invisibleSince.has(first)) this.invisibleSince.set(first, now);
          this.pending.unshift(...rest);
        }
        for (const id of ids.slice(0, handled)) this.invisibleSince.delete(id);
        // the next statement does not wait for Redis; the acknowledgements follow the publishes in order
        const published = updates.length > 0 ? withTimeout(this.options.publish(updates), PUBLISH_TIMEOUT_MS, "delivery publish") : Promise.resolve();
        const endLsn = done > 0 ? lsnToBigInt(batch[done - 1]!.endLsn) : undefined;
        this.inFlight++;
        this.acks = this.acks
          .then(() => published)
          .then(
            () => {
              if (endLsn !== undefined && this.live(generation)) this.acknowledge(service, endLsn);
            },
            (error: unknown) => this.failed(service, generation, error),
          )
          .finally(() => this.inFlight--);
        // a commit not visible yet: it will be in a moment
        if (rest.length > 0) {
          this.options.metrics.replicationVisibilityWaits.inc();
          await sleep(1);
        }
      }
    } catch (error) {
      this.failed(service, generation, error);
    } finally {
      this.flushing = false;
      // commits of a newer stream that arrived while this (ended) one was still flushing
      const current = this.service;
      if (this.pending.length > 0 && current && current !== service && !this.broken.has(current) && this.live(generation)) this.schedule(current, generation);
    }
  }

  /** Not acknowledged: the restarted stream replays from the slot (numbered rows are read back). */
  private failed(service: LogicalReplicationService, generation: number, error: unknown): void {
    if (!this.live(generation) || this.broken.has(service)) return;
    // nothing after the failure may be acknowledged on this stream
    this.broken.add(service);
    this.log.warn({ err: coerceError(error) }, "replicated events not numbered or not delivered to the bus; restarting the stream from the slot");
    this.wake?.();
  }

  /** confirmed_flush_lsn lag and the slot's WAL status, for the metric; undefined without a slot */
  async lag(session: pg.Client): Promise<{ bytes: number; walStatus: string | null } | undefined> {
    const { rows } = await session.query<{ lag: string | null; wal_status: string | null }>(
      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag, wal_status FROM pg_replication_slots WHERE slot_name = $1",
      [this.options.slot],
    );
    const row = rows[0];
    if (!row) return undefined;
    return { bytes: Number(row.lag ?? 0), walStatus: row.wal_status };
  }

  /** the slot vanished or was invalidated under the stream: restart it (prepare recreates, the sweep fills in) */
  restart(): void {
    this.wake?.();
  }
}
