/**
 * Redis clients (ioredis) and the Socket.IO adapter built on them.
 *
 * Every client gets an error listener and reconnects with jittered backoff; commands fail fast
 * while disconnected instead of queueing without bound, so a Redis outage never wedges a handler.
 */
import { createAdapter } from "@socket.io/redis-adapter";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";
import { backoffMs } from "./lifecycle.js";

export interface RedisClients {
  /** commands and publishing */
  pub: Redis;
  /** the adapter's subscriber connection */
  sub: Redis;
  /** true while both connections are ready */
  ready(): boolean;
  /** called with the new state whenever `ready()` changes */
  onChange(listener: (ready: boolean) => void): void;
  close(): Promise<void>;
}

export function createRedisClient(url: string, name: string, logger: Logger, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    connectionName: name,
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 5000,
    commandTimeout: 5000,
    retryStrategy: (attempt) => backoffMs(attempt, 100, 5000),
    reconnectOnError: (error) => error.message.startsWith("READONLY"),
    ...extra,
  });
  let wasReady = false;
  client.on("error", (error: Error) => {
    // ioredis emits an error per failed reconnect attempt; log the first of an outage loudly
    logger[wasReady ? "warn" : "debug"]({ err: error, client: name }, "redis error");
    wasReady = false;
  });
  client.on("ready", () => {
    wasReady = true;
  });
  return client;
}

/**
 * The Redis adapters call `publish`/`spublish` without handling the promise; during an outage
 * those reject and, unhandled, would crash the process. Mark them handled (and log) here.
 */
function guardPublishes(client: Redis, logger: Logger): void {
  for (const method of ["publish", "spublish"] as const) {
    const original = client[method].bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const result = original(...args);
      result.catch((error: Error) => logger.debug({ err: error, method }, "redis publish failed"));
      return result;
    };
  }
}

/** `instanceId` goes into the connection names, so an operator (or a test) can tell them apart in CLIENT LIST. */
export function createRedisClients(url: string, logger: Logger, instanceId?: string): RedisClients {
  const suffix = instanceId ? `-${instanceId.replace(/[^\w.:-]/g, "_")}` : "";
  const pub = createRedisClient(url, `gateway-pub${suffix}`, logger);
  guardPublishes(pub, logger);
  // the subscriber must never time out its blocking subscribe mode
  const sub = createRedisClient(url, `gateway-sub${suffix}`, logger, { commandTimeout: undefined });
  const listeners: Array<(ready: boolean) => void> = [];
  let last = false;
  const update = () => {
    const now = pub.status === "ready" && sub.status === "ready";
    if (now === last) return;
    last = now;
    logger[now ? "info" : "warn"]({ dependency: "redis" }, now ? "redis up" : "redis down");
    for (const listener of listeners) listener(now);
  };
  for (const client of [pub, sub]) for (const event of ["ready", "close", "end", "reconnecting"]) client.on(event, update);
  return {
    pub,
    sub,
    ready: () => pub.status === "ready" && sub.status === "ready",
    onChange: (listener) => listeners.push(listener),
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}

/** The adapter factory `io.adapter()` takes (typed loosely: the two factories' class types differ). */
export type AdapterFactory = ReturnType<typeof createAdapter>;

export function redisAdapter(kind: "classic" | "sharded", clients: RedisClients, prefix: string): AdapterFactory {
  if (kind === "sharded") {
    return createShardedAdapter(clients.pub, clients.sub, { channelPrefix: `${prefix}:sio`, subscriptionMode: "dynamic" }) as unknown as AdapterFactory;
  }
  return createAdapter(clients.pub, clients.sub, { key: `${prefix}:sio`, requestsTimeout: 3000 });
}
