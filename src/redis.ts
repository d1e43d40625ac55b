/**
 * Redis clients (ioredis) and the Socket.IO adapter built on them: one Redis, or a Redis Cluster
 * (REDIS_CLUSTER=true, REDIS_URL lists seed nodes) through ioredis `Cluster`.
 *
 * Every client gets an error listener and reconnects with jittered backoff; commands fail fast
 * while disconnected instead of queueing without bound, so a Redis outage never wedges a handler.
 * On a cluster, readiness also needs every master to report `cluster_state:ok` (probed every
 * second), so /readyz and the outage replay see a failed or restarting master too.
 */
import { createAdapter } from "@socket.io/redis-adapter";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { coerceError } from "./errors.js";
import type { Logger } from "./logger.js";
import { backoffMs, withTimeout } from "./lifecycle.js";

/** One Redis or a Redis Cluster: both speak every command the gateway sends (keys share hash tags). */
export type RedisConnection = Redis | Cluster;

export interface RedisClients {
  /** commands and publishing (PUBLISH, SPUBLISH, scripts) */
  pub: RedisConnection;
  /** the adapter's subscriber connection (on a cluster: one SSUBSCRIBE connection per master) */
  sub: RedisConnection;
  /** true on a Redis Cluster (REDIS_CLUSTER=true) */
  cluster: boolean;
  /** true while both connections are ready (on a cluster: and every master reports cluster_state:ok) */
  ready(): boolean;
  /** called with the new state whenever `ready()` changes */
  onChange(listener: (ready: boolean) => void): void;
  close(): Promise<void>;
}

export interface RedisClientsOptions {
  /** REDIS_CLUSTER */
  cluster?: boolean;
  /** goes into the connection names */
  instanceId?: string;
  /** how often a cluster's state is probed. @default 1000 */
  clusterProbeMs?: number;
}

const COMMAND_OPTIONS = {
  maxRetriesPerRequest: 2,
  connectTimeout: 5000,
  commandTimeout: 5000,
} satisfies RedisOptions;

function watchErrors(client: RedisConnection, name: string, logger: Logger): void {
  let wasReady = false;
  client.on("error", (error: Error) => {
    // ioredis emits an error per failed reconnect attempt; log the first of an outage loudly
    logger[wasReady ? "warn" : "debug"]({ err: error, client: name }, "redis error");
    wasReady = false;
  });
  client.on("ready", () => {
    wasReady = true;
  });
}

export function createRedisClient(url: string, name: string, logger: Logger, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    connectionName: name,
    lazyConnect: false,
    enableOfflineQueue: true,
    ...COMMAND_OPTIONS,
    retryStrategy: (attempt) => backoffMs(attempt, 100, 5000),
    reconnectOnError: (error) => error.message.startsWith("READONLY"),
    ...extra,
  });
  watchErrors(client, name, logger);
  return client;
}

/** "redis://a:6379,redis://b:6379" → the seed nodes and the options they share (user, password, TLS). */
export function clusterSeeds(urls: string): { nodes: Array<{ host: string; port: number }>; redisOptions: RedisOptions } {
  const parsed = urls.split(",").map((seed) => new URL(seed.trim()));
  const first = parsed[0]!;
  return {
    nodes: parsed.map((u) => ({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 6379) })),
    redisOptions: {
      username: first.username ? decodeURIComponent(first.username) : undefined,
      password: first.password ? decodeURIComponent(first.password) : undefined,
      tls: first.protocol === "rediss:" ? {} : undefined,
    },
  };
}

export function createClusterClient(urls: string, name: string, logger: Logger, extra: ClusterOptions = {}): Cluster {
  const { nodes, redisOptions } = clusterSeeds(urls);
  const client = new Cluster(nodes, {
    enableOfflineQueue: true,
    enableReadyCheck: true,
    // every command to the master of its slot: replicas lag, and scripts write
    scaleReads: "master",
    clusterRetryStrategy: (attempt) => backoffMs(attempt, 100, 5000),
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    slotsRefreshTimeout: 2000,
    slotsRefreshInterval: 5000,
    ...extra,
    redisOptions: { connectionName: name, ...COMMAND_OPTIONS, ...redisOptions, ...extra.redisOptions },
  });
  watchErrors(client, name, logger);
  return client;
}

/**
 * The Redis adapters call `publish`/`spublish` without handling the promise; during an outage
 * those reject and, unhandled, would crash the process. Mark them handled (and log) here.
 */
function guardPublishes(client: RedisConnection, logger: Logger): void {
  for (const method of ["publish", "spublish"] as const) {
    const original = client[method].bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const result = original(...args);
      result.catch((error: Error) => logger.debug({ err: error, method }, "redis publish failed"));
      return result;
    };
  }
}

/**
 * Every master answers CLUSTER INFO within a second with cluster_state:ok, and we reach as many
 * masters as serve slots (ioredis drops a dead master from its pool before the others mark it
 * failed, and until then they still report ok).
 */
async function clusterHealthy(cluster: Cluster): Promise<boolean> {
  const masters = cluster.nodes("master");
  if (masters.length === 0) return false;
  const states = await Promise.all(
    masters.map((node) =>
      withTimeout(node.cluster("INFO") as Promise<string>, 1000, "CLUSTER INFO")
        .then((info) => /cluster_state:ok/.test(info) && Number(/cluster_size:(\d+)/.exec(info)?.[1] ?? 0) <= masters.length)
        .catch(() => false),
    ),
  );
  return states.every(Boolean);
}

interface ShardedSubscriberView {
  isHealthy(): boolean;
  subscriberStatus: string;
  getInstance(): Redis | null;
}

/**
 * Whether the subscriber Cluster's per-master SSUBSCRIBE connections are all up and resubscribed.
 * ioredis exposes no public API for this, so it reads the subscriber group (ioredis ^5.9) and, if
 * that ever changes shape, falls back to the cluster's own status.
 */
function shardedSubscribersUp(sub: Cluster): boolean {
  const group = (sub as unknown as { shardedSubscribers?: { shardedSubscribers?: Map<string, ShardedSubscriberView>; isResetting?: boolean } }).shardedSubscribers;
  const map = group?.shardedSubscribers;
  if (!(map instanceof Map)) return sub.status === "ready";
  if (group?.isResetting) return false;
  for (const subscriber of map.values()) {
    if (!subscriber.isHealthy()) return false;
    if (subscriber.subscriberStatus !== "idle" && subscriber.getInstance()?.status !== "ready") return false;
  }
  return true;
}

export function createRedisClients(url: string, logger: Logger, options: RedisClientsOptions = {}): RedisClients {
  const cluster = options.cluster ?? false;
  // the instance id in the connection names lets an operator (or a test) tell them apart in CLIENT LIST
  const suffix = options.instanceId ? `-${options.instanceId.replace(/[^\w.:-]/g, "_")}` : "";
  let pub: RedisConnection;
  let sub: RedisConnection;
  if (cluster) {
    pub = createClusterClient(url, `gateway-pub${suffix}`, logger);
    // one SSUBSCRIBE connection per master, resubscribed per slot after a failover; the subscriber
    // must never time out its subscribe mode
    sub = createClusterClient(url, `gateway-sub${suffix}`, logger, { shardedSubscribers: true, redisOptions: { commandTimeout: undefined } });
  } else {
    pub = createRedisClient(url, `gateway-pub${suffix}`, logger);
    sub = createRedisClient(url, `gateway-sub${suffix}`, logger, { commandTimeout: undefined });
  }
  guardPublishes(pub, logger);
  const listeners: Array<(ready: boolean) => void> = [];
  // a single Redis needs no probe; a cluster is healthy only once probed
  let healthy = !cluster;
  let last = false;
  const ready = () => pub.status === "ready" && sub.status === "ready" && healthy;
  const update = () => {
    const now = ready();
    if (now === last) return;
    last = now;
    logger[now ? "info" : "warn"]({ dependency: "redis", cluster }, now ? "redis up" : "redis down");
    for (const listener of listeners) {
      try {
        listener(now);
      } catch (error) {
        logger.error({ err: coerceError(error) }, "redis readiness listener failed");
      }
    }
  };
  for (const client of [pub, sub]) for (const event of ["ready", "close", "end", "reconnecting"]) client.on(event, update);
  let probeTimer: NodeJS.Timeout | undefined;
  let closed = false;
  if (cluster) {
    // a master failed or moved: its subscriber is replaced and its channels resubscribed per slot;
    // until "subscribersReady", messages on that master's slots would be lost, so stay unready
    let resubscribing = false;
    sub.on("-subscriber", () => {
      resubscribing = true;
      healthy = false;
      update();
    });
    sub.on("subscribersReady", () => {
      resubscribing = false;
    });
    const probe = async () => {
      // read before the round trips: a resubscription sent before them has landed after them
      const subscribed = !resubscribing && shardedSubscribersUp(sub as Cluster);
      healthy = subscribed && pub.status === "ready" && (await clusterHealthy(pub as Cluster));
      update();
      if (!closed) probeTimer = setTimeout(() => void probe(), options.clusterProbeMs ?? 1000);
    };
    // the first probe as soon as the cluster client has its slots
    pub.once("ready", () => void probe());
  }
  return {
    pub,
    sub,
    cluster,
    ready,
    onChange: (listener) => listeners.push(listener),
    async close() {
      closed = true;
      clearTimeout(probeTimer);
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
  if (clients.cluster) throw new Error("the classic adapter does not run on a Redis Cluster (REDIS_ADAPTER=sharded)");
  return createAdapter(clients.pub, clients.sub, { key: `${prefix}:sio`, requestsTimeout: 3000 });
}
