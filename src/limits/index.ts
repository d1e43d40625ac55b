/**
 * The limits for this mode: memory drivers on a single node; with Redis, cluster-wide drivers that
 * fall back to per-instance memory while Redis is unreachable. Limits are read from configuration
 * when the gateway starts.
 */
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from "rate-limiter-flexible";
import type { GatewayConfig, RateLimit } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { RedisClients } from "../redis.js";
import { createLiveness, type Liveness } from "../cluster/liveness.js";
import { createConnectionLimiter, memorySlots, type SlotStore } from "./connection-limiter.js";
import { createEventLimiter } from "./event-limiter.js";
import { RedisSlots } from "./redis-slots.js";
import type { ConnectionLimiter, EventLimiter } from "./types.js";

export interface Limits {
  connections: ConnectionLimiter;
  events: EventLimiter;
  close(): Promise<void>;
}

export interface LimitsOptions {
  config: GatewayConfig;
  redis?: RedisClients;
  logger: Logger;
  metrics: Metrics;
  /** the shared cluster liveness (with Redis); one of its own when not given */
  liveness?: Liveness;
}

function memoryRate(limit: RateLimit): RateLimiterMemory {
  return new RateLimiterMemory({ points: limit.points, duration: limit.durationMs / 1000 });
}

export function createLimits(options: LimitsOptions): Limits {
  const { config, redis, metrics } = options;
  const logger = options.logger.child({ scope: "limits" });
  const rateLimit = config.connectionRatePerIp;
  let rate: RateLimiterAbstract | undefined;
  let slots: SlotStore;
  metrics.limiterFallback.set(0);
  if (!redis) {
    rate = rateLimit.points > 0 ? memoryRate(rateLimit) : undefined;
    slots = memorySlots();
  } else {
    if (rateLimit.points > 0) {
      rate = new RateLimiterRedis({
        storeClient: redis.pub,
        keyPrefix: `${config.redisPrefix}:limits:rate`,
        points: rateLimit.points,
        // Redis expiries here are whole seconds
        duration: Math.max(1, Math.ceil(rateLimit.durationMs / 1000)),
        // do not queue behind a dead connection: go straight to the per-instance insurance
        rejectIfRedisNotReady: true,
        insuranceLimiter: memoryRate(rateLimit),
      });
    }
    const ownLiveness = options.liveness ? undefined : createLiveness({ client: redis.pub, prefix: config.redisPrefix, instanceId: config.instanceId, logger });
    const redisSlots = new RedisSlots({
      client: redis.pub,
      liveness: options.liveness ?? ownLiveness!,
      logger,
      onFallback: (active) => metrics.limiterFallback.set(active ? 1 : 0),
    });
    redis.onChange((ready) => {
      redisSlots.markDirty();
      if (ready) void redisSlots.sync();
    });
    slots = ownLiveness ? { acquire: (ip, max) => redisSlots.acquire(ip, max), release: (ip) => redisSlots.release(ip), close: () => redisSlots.close().finally(() => ownLiveness.close()) } : redisSlots;
  }
  const connections = createConnectionLimiter({ maxPerIp: config.maxConnectionsPerIp, rate, slots, logger });
  const events: EventLimiter = createEventLimiter(config.eventRatePerSocket);
  return { connections, events, close: () => connections.close() };
}
