/**
 * Step 3: the bus carries sequenced events (and evictions) from the leader to every instance that
 * holds subscribers of their tickets. It is allowed to lose messages: each instance checks what
 * it received against the outbox (src/delivery/ledger.ts, reconciler.ts) and repairs the rest.
 *
 * - local: one process (no REDIS_URL); the leader hands events straight to its own ledger.
 * - Redis, classic: one channel, every instance gets every batch.
 * - Redis, sharded: one sharded channel per ticket (SPUBLISH / SSUBSCRIBE, Redis 7), subscribed
 *   while the instance holds the ticket; the hash tag puts the channel in the ticket's slot on a
 *   Redis Cluster.
 * The leader's own instance always gets its batches directly and ignores their echo.
 */
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { TicketUpdate } from "../protocol.js";
import type { RedisClients } from "../redis.js";
import type { Eviction } from "./history.js";

export type { Eviction } from "./history.js";

export interface BusMessage {
  /** the publishing instance */
  origin: string;
  updates?: TicketUpdate[];
  evictions?: Eviction[];
}

export interface DeliveryBus {
  /**
   * Send to every instance holding these tickets, this one included (synchronously). Resolves when
   * Redis accepted every message, rejects when one failed (the failure is counted and logged
   * already; callers that do not wait may ignore it): the replication source acknowledges an LSN
   * only after that.
   */
  publish(updates: TicketUpdate[]): Promise<void>;
  publishEvictions(evictions: Eviction[]): void;
  /** this instance now holds subscribers of the ticket (sharded: subscribe its channel); never rejects */
  watch(ticketId: string): Promise<void>;
  unwatch(ticketId: string): void;
  close(): Promise<void>;
}

export type BusHandler = (message: BusMessage) => void;

/** Messages stay under this many serialized characters (large events go one or a few at a time). */
const MAX_MESSAGE_CHARS = 256 * 1024;

export function createLocalBus(instanceId: string, handler: BusHandler): DeliveryBus {
  return {
    publish: async (updates) => handler({ origin: instanceId, updates }),
    publishEvictions: (evictions) => handler({ origin: instanceId, evictions }),
    watch: async () => undefined,
    unwatch: () => undefined,
    close: async () => undefined,
  };
}

/** Split into messages of bounded size, keeping the order. */
export function chunk<T>(items: T[], size: (item: T) => number, max = MAX_MESSAGE_CHARS): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let chars = 0;
  for (const item of items) {
    const n = size(item);
    if (current.length > 0 && chars + n > max) {
      chunks.push(current);
      current = [];
      chars = 0;
    }
    current.push(item);
    chars += n;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Resolves when every send succeeded, rejects with the first failure (after all have settled). */
async function settle(sent: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(sent);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

export interface RedisBusOptions {
  redis: RedisClients;
  mode: "classic" | "sharded";
  prefix: string;
  instanceId: string;
  logger: Logger;
  handler: BusHandler;
  /** a publish that failed (the reconcilers will repair) */
  onPublishError?: () => void;
}

export function createRedisBus({ redis, mode, prefix, instanceId, logger, handler, onPublishError }: RedisBusOptions): DeliveryBus {
  const log = logger.child({ component: "bus" });
  const broadcastChannel = `${prefix}:delivery`;
  const ticketChannel = (ticketId: string) => `${prefix}:delivery:{${ticketId}}`;
  const ticketPrefix = `${prefix}:delivery:{`;

  function receive(channel: string, raw: Buffer): void {
    let message: BusMessage;
    try {
      message = JSON.parse(raw.toString("utf8")) as BusMessage;
    } catch (error) {
      log.warn({ err: coerceError(error), channel }, "unreadable delivery message ignored");
      return;
    }
    if (message.origin === instanceId) return;
    handler(message);
  }

  const onMessage = (channel: Buffer, raw: Buffer) => {
    if (channel.toString() === broadcastChannel) receive(broadcastChannel, raw);
  };
  const onShardMessage = (channel: Buffer, raw: Buffer) => {
    const name = channel.toString();
    if (name.startsWith(ticketPrefix)) receive(name, raw);
  };

  if (mode === "classic") {
    redis.sub.on("messageBuffer", onMessage);
    redis.sub.subscribe(broadcastChannel).catch((error: unknown) => log.warn({ err: coerceError(error) }, "delivery subscribe failed; ioredis retries on reconnect"));
  } else {
    redis.sub.on("smessageBuffer", onShardMessage);
  }

  function send(channel: string, key: "updates" | "evictions", items: string[]): Promise<unknown> {
    // each item is serialized once; the message is assembled around the pieces
    const text = `{"origin":${JSON.stringify(instanceId)},"${key}":[${items.join(",")}]}`;
    const sent = mode === "classic" ? redis.pub.publish(channel, text) : redis.pub.spublish(channel, text);
    return sent.catch((error: unknown) => {
      onPublishError?.();
      log.debug({ err: coerceError(error), channel }, "delivery publish failed; reconciliation repairs it");
      throw error;
    });
  }

  /** every message is sent at once (pipelined by ioredis); the promise settles when all have */
  function fanOut<T extends { ticketId: string }>(items: T[], key: "updates" | "evictions"): Promise<void> {
    const sent: Promise<unknown>[] = [];
    if (mode === "classic") {
      for (const part of chunk(items.map((item) => JSON.stringify(item)), (text) => text.length)) sent.push(send(broadcastChannel, key, part));
      return settle(sent);
    }
    const byTicket = new Map<string, string[]>();
    for (const item of items) {
      const text = JSON.stringify(item);
      const list = byTicket.get(item.ticketId);
      if (list) list.push(text);
      else byTicket.set(item.ticketId, [text]);
    }
    for (const [ticketId, list] of byTicket) {
      for (const part of chunk(list, (text) => text.length)) sent.push(send(ticketChannel(ticketId), key, part));
    }
    return settle(sent);
  }

  return {
    // Redis first: the other instances start their fan-out while this one writes to its own sockets
    // (a batch of 500 events is thousands of socket writes here, which the others need not wait for)
    publish(updates) {
      let sent!: Promise<void>;
      try {
        sent = fanOut(updates, "updates");
      } finally {
        handler({ origin: instanceId, updates });
      }
      return sent;
    },
    publishEvictions(evictions) {
      try {
        fanOut(evictions, "evictions").catch(() => undefined);
      } finally {
        handler({ origin: instanceId, evictions });
      }
    },
    async watch(ticketId) {
      if (mode !== "sharded") return;
      await redis.sub
        .ssubscribe(ticketChannel(ticketId))
        .then(() => undefined)
        .catch((error: unknown) => log.debug({ err: coerceError(error), ticketId }, "ssubscribe failed; reconciliation covers the ticket"));
    },
    unwatch(ticketId) {
      if (mode !== "sharded") return;
      redis.sub.sunsubscribe(ticketChannel(ticketId)).catch(() => undefined);
    },
    async close() {
      redis.sub.off("messageBuffer", onMessage);
      redis.sub.off("smessageBuffer", onShardMessage);
      if (mode === "classic") await redis.sub.unsubscribe(broadcastChannel).catch(() => undefined);
    },
  };
}
