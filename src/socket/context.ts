import type { TokenVerifier } from "../auth/jwt.js";
import type { GatewayConfig } from "../config.js";
import type { Delivery } from "../delivery/index.js";
import type { EvictionRegistry } from "../db/evictions.js";
import type { ConnectionLimiter, EventLimiter } from "../limits/types.js";
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
  connectionLimiter: ConnectionLimiter;
  eventLimiter: EventLimiter;
  isDraining(): boolean;
  /** SSE streams open (or being admitted) on this instance: they share MAX_CONNECTIONS with sockets */
  sseStreams?(): number;
}
