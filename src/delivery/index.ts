/**
 * The delivery pipeline of one instance, in the order an event travels:
 *
 *   writer INSERT ─► leader.ts (elected, leased) ─► dispatcher.ts (numbers seqs after commit)
 *     ─► bus.ts (Redis or in-process) ─► ledger.ts (in order, once, per local room) ─► sockets
 *                                            ▲                      └─► SSE streams (local-subscribers.ts)
 *                          reconciler.ts ────┘ (repairs gaps and tails from history.ts)
 *
 * `createDelivery` wires them; the socket layer (and the SSE layer, with `subscribers`) calls
 * `retain` / `attach` / `release` for subscriptions.
 */
import type pg from "pg";
import type { EventSource, GatewayConfig } from "../config.js";
import { ClientError, ErrorCode } from "../errors.js";
import { sleep, withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { ticketRoom, type TicketUpdate } from "../protocol.js";
import type { RedisClients } from "../redis.js";
import type { GatewayServer } from "../io-types.js";
import { createLocalBus, createRedisBus, type BusMessage, type DeliveryBus } from "./bus.js";
import { createDispatcher } from "./dispatcher.js";
import { createHistory, type Eviction, type HistoryView } from "./history.js";
import { observeLatency } from "./latency.js";
import { Leader } from "./leader.js";
import { Ledger } from "./ledger.js";
import { LocalSubscribers } from "./local-subscribers.js";
import { createReconciler } from "./reconciler.js";
import { createRetention } from "./retention.js";

/** How long a subscribe waits for this instance's room to catch up with what the client has seen. */
const ATTACH_DEADLINE_MS = 10_000;

export interface DeliveryOptions {
  config: GatewayConfig;
  io: GatewayServer;
  pool: pg.Pool;
  connectionString: string;
  /** EVENT_SOURCE resolved against the server (src/db/event-source.ts). @default "queue" */
  eventSource?: EventSource;
  redis: RedisClients | undefined;
  logger: Logger;
  metrics: Metrics;
  /** remove the user's local sockets from the ticket room (evicted at `evictedAt`) */
  evict(eviction: Eviction): void;
}

/** What a subscriber's ack carries: the position it starts live from, and what it missed. */
export interface AttachResult {
  seq: number;
  missed: TicketUpdate[];
  recovered: boolean;
}

/** A socket attaching to a ticket's stream. */
export interface Attachment {
  /**
   * Bring the socket level with the room and ack: `respond` runs in the same synchronous step that
   * checks the room's position and turns live delivery on, so no event slips between the ack's
   * `missed` and the first live one, and none is in both. Throws UNAVAILABLE when the room could
   * not be brought level in time; a throw from `respond` leaves the socket attaching (cancel it).
   */
  complete(respond: (result: AttachResult) => void): Promise<void>;
  /** the subscription ended or failed before it went live */
  cancel(): void;
}

export type Delivery = ReturnType<typeof createDelivery>;

export function createDelivery(options: DeliveryOptions) {
  const { config, io, pool, redis, logger, metrics } = options;
  const log = logger.child({ component: "delivery" });
  const history = createHistory(pool);
  // SSE streams: the same rooms, written by the same sink
  const subscribers = new LocalSubscribers();

  const ledger: Ledger = new Ledger({
    emit(update, except) {
      const room = ticketRoom(update.ticketId);
      const target = except.size > 0 ? io.local.to(room).except([...except]) : io.local.to(room);
      target.emit("ticket:update", update);
      subscribers.emit(update, except);
      observeLatency(io, metrics.updateLatency, update);
    },
    behind: (ticketId) => reconciler.repair(ticketId),
    duplicate: () => metrics.duplicatesDropped.inc(),
    caughtUp: (_ticketId, lagMs) => metrics.repairLag.observe(lagMs / 1000),
  });

  function onBus(message: BusMessage): void {
    if (message.updates) for (const update of message.updates) ledger.accept(update);
    if (message.evictions) applyEvictions(message.evictions);
  }

  /** per room, its bus subscription (settles once the channel is subscribed, or gave up) */
  const watching = new Map<string, Promise<void>>();

  function applyEvictions(evictions: Eviction[]): void {
    for (const eviction of evictions) options.evict(eviction);
  }

  const bus: DeliveryBus = redis
    ? createRedisBus({
        redis,
        mode: config.redisAdapter,
        prefix: config.redisPrefix,
        instanceId: config.instanceId,
        logger,
        handler: onBus,
        onPublishError: () => metrics.busPublishFailures.inc(),
      })
    : createLocalBus(config.instanceId, onBus);

  const reconciler = createReconciler({ ledger, history, intervalMs: config.reconcileIntervalMs, logger, metrics, applyEvictions });
  const retention = createRetention(config.eventRetentionMs, log, () => leader.poke());
  const source = options.eventSource ?? "queue";
  metrics.eventSource.set({ source: "replication" }, source === "replication" ? 1 : 0);
  metrics.eventSource.set({ source: "queue" }, source === "queue" ? 1 : 0);
  const dispatcher = createDispatcher({
    bus,
    retention,
    logger,
    metrics,
    source,
    connectionString: options.connectionString,
    slot: config.replicationSlot,
  });
  const leader = new Leader({
    connectionString: options.connectionString,
    channel: config.pgChannel,
    instanceId: config.instanceId,
    leaseMs: config.leaderLeaseMs,
    leaderPollMs: config.queuePollMs,
    logger,
    metrics,
    duties: dispatcher,
  });


  return {
    start(): void {
      leader.start();
      reconciler.start();
    },
    async stop(): Promise<void> {
      retention.stop();
      await reconciler.stop();
      await leader.stop();
      await bus.close();
    },
    get isLeader(): boolean {
      return leader.isLeader;
    },
    /** wake the leader (tests, and Redis coming back) */
    poke: () => leader.poke(),
    /** resolves after the leader's next prune */
    pruneNow: () => retention.pruneNow(),
    /** false while this instance cannot read the outbox to repair its rooms */
    healthy: () => !reconciler.failing(),

    /** Non-socket subscribers of the rooms (SSE): `add` after `retain`, `remove` before `release`. */
    subscribers,

    /** true while this instance holds the ticket's room (some subscriber retains it) */
    holds: (ticketId: string): boolean => ledger.has(ticketId),

    /** A subscription to the ticket starts on this instance (before `attach`). */
    retain(ticketId: string): void {
      // a new room's first history read waits for its channel (sharded), so what is published
      // after the read reaches it live rather than through a repair
      if (!ledger.has(ticketId)) watching.set(ticketId, withTimeout(bus.watch(ticketId), 2000, "delivery subscribe").catch(() => undefined));
      ledger.retain(ticketId);
    },
    /** A subscription ends (unsubscribe, revocation, disconnect). */
    release(ticketId: string): void {
      if (!ledger.release(ticketId)) return;
      watching.delete(ticketId);
      bus.unwatch(ticketId);
    },

    /**
     * Attach a socket to the stream of a ticket it holds (`retain`ed): until `complete` acks, live
     * events skip it. Also used by a socket already subscribed that asks to re-sync.
     */
    attach(ticketId: string, socketId: string, sinceSeq: number | undefined): Attachment {
      ledger.attaching(ticketId, socketId, true);
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        ledger.attaching(ticketId, socketId, false);
      };
      return {
        async complete(respond) {
          const deadline = Date.now() + ATTACH_DEADLINE_MS;
          let view: HistoryView | undefined;
          for (;;) {
            if (!ledger.has(ticketId)) throw new ClientError(ErrorCode.FORBIDDEN, `the subscription to ticket ${ticketId} ended while it was being set up`);
            const delivered = ledger.delivered(ticketId);
            if (sinceSeq === undefined && delivered !== undefined) {
              // a fresh subscriber of a positioned room needs no read at all
              respond({ seq: delivered, missed: [], recovered: true });
              return finish();
            }
            if (!view) {
              await watching.get(ticketId);
              view = await history.view(ticketId, sinceSeq);
            }
            if (!ledger.has(ticketId)) continue;
            ledger.initialize(ticketId, view.head);
            const at = ledger.delivered(ticketId)!;
            if (!view.recovered) {
              respond({ seq: at, missed: [], recovered: false });
              return finish();
            }
            if (at > view.head) {
              view = undefined; // events were delivered during the read: read again
            } else if (sinceSeq !== undefined && at < sinceSeq) {
              // the client has seen more than this room delivered so far: let the room catch up
              ledger.want(ticketId, view.head);
              await sleep(20);
            } else {
              respond({ seq: at, missed: view.events.filter((event) => event.seq! <= at), recovered: true });
              return finish();
            }
            if (Date.now() > deadline) throw new ClientError(ErrorCode.UNAVAILABLE, "this instance is catching up on the ticket, retry shortly");
          }
        },
        cancel: finish,
      };
    },
  };
}
