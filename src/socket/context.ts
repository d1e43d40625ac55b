import type { TokenVerifier } from "../auth/jwt.js";
import type { GatewayConfig } from "../config.js";
import type { Delivery } from "../delivery/index.js";
import type { EvictionRegistry } from "../db/evictions.js";
import type { EngineAdmission } from "../limits/engine-admission.js";
import type { EventLimiter } from "../limits/types.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { PresenceStore } from "../presence/types.js";
import type { GatewayServer } from "../io-types.js";

export type { GatewayServer, GatewaySocket } from "../io-types.js";

/** What socket handlers may use; built once per gateway in `start()`. */
export interface SocketContext {
  config: GatewayConfig;
  io: GatewayServer;
  logger: Logger;
  metrics: Metrics;
  verifier: TokenVerifier;
  delivery: Delivery;
  presence: PresenceStore;
  /** realtime.evictions for the re-subscription rule; absent: no rule */
  evictions?: EvictionRegistry;
  /** the engine-level connection accounting; every Engine.IO session has a record there */
  admission: EngineAdmission;
  eventLimiter: EventLimiter;
  isDraining(): boolean;
}
