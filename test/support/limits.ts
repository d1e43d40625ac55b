/** Helpers for the limits tests: rejection counters, the cluster-wide slot count in Redis. */
import { Redis } from "ioredis";
import type { RedisConnection } from "../../src/redis.js";
import type { Gateway } from "../../src/gateway.js";
import { onCleanup } from "./cleanup.js";
import { connect, connectError, type ConnectOptions, type TestSocket } from "./client.js";
import { TEST_REDIS_URL } from "./env.js";

export async function rejected(gateway: Gateway, reason: string): Promise<number> {
  const metric = await gateway.metrics.connectionsRejected.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

export async function clientEvents(gateway: Gateway, result: string): Promise<number> {
  const metric = await gateway.metrics.clientEvents.get();
  return metric.values.filter((v) => v.labels.result === result).reduce((sum, v) => sum + v.value, 0);
}

export function redisClient(url = TEST_REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
  client.on("error", () => undefined);
  onCleanup("redis client", () => client.disconnect());
  return client;
}

/** Connections `ip` holds across the cluster, as the Redis slots see them (live instances only). */
export async function redisSlotCount(redis: RedisConnection, prefix: string, ip: string): Promise<number> {
  const base = `${prefix}:{gw}`;
  const live = await redis.zrangebyscore(`${base}:instances`, `(${Date.now()}`, "+inf");
  let total = 0;
  for (const id of live) total += Number((await redis.hget(`${base}:limits:i:${id}`, ip)) ?? 0);
  return total;
}

/** Try to connect; the socket, or the handshake error's data. */
export async function attempt(url: string, options: ConnectOptions = {}): Promise<TestSocket | { code: string; status: number; retryAfterMs?: number }> {
  try {
    return await connect(url, options);
  } catch (error) {
    const data = (error as { data?: { code: string; status: number } }).data;
    if (!data) throw error;
    return data;
  }
}

export { connectError };
