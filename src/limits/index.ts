/**
 * Connection and event limits. Placeholder drivers until the abuse-protection work lands:
 * they admit everything (MAX_CONNECTIONS is enforced by the handshake itself).
 */
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { RedisClients } from "../redis.js";
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
}

export function createLimits(_options: LimitsOptions): Limits {
  const connections: ConnectionLimiter = { admit: async () => ({ release() {} }), close: async () => {} };
  const events: EventLimiter = { consume: async () => ({ allowed: true, retryAfterMs: 0 }), forget() {} };
  return { connections, events, close: async () => {} };
}
