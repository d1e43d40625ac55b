import type { GatewayConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { RedisClients } from "../redis.js";
import { createMemoryPresence } from "./memory.js";
import type { PresenceStore } from "./types.js";

export interface PresenceOptions {
  config: GatewayConfig;
  redis?: RedisClients;
  logger: Logger;
}

/** The presence driver for this mode. */
export function createPresence(_options: PresenceOptions): PresenceStore {
  return createMemoryPresence();
}
