import type { GatewayConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { Liveness } from "../cluster/liveness.js";
import type { RedisClients } from "../redis.js";
import { createMemoryPresence } from "./memory.js";
import { createRedisPresence } from "./redis.js";
import type { PresenceStore } from "./types.js";

export interface PresenceOptions {
  config: GatewayConfig;
  redis?: RedisClients;
  logger: Logger;
  /** the shared cluster liveness (with Redis) */
  liveness?: Liveness;
}

/** The presence driver for this mode: Redis in a cluster, memory on a single node. */
export function createPresence({ config, redis, logger, liveness }: PresenceOptions): PresenceStore {
  if (!redis) return createMemoryPresence();
  return createRedisPresence({ client: redis.pub, prefix: config.redisPrefix, instanceId: config.instanceId, logger, liveness });
}
