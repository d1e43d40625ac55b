import type { Server, Socket } from "socket.io";
import type { TokenVerifier } from "../auth/jwt.js";
import type { GatewayConfig } from "../config.js";
import type { EventStore } from "../events/types.js";
import type { EvictionRegistry } from "../db/evictions.js";
import type { EngineAdmission } from "../limits/engine-admission.js";
import type { EventLimiter } from "../limits/types.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { PresenceStore } from "../presence/types.js";
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from "../protocol.js";

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** What socket handlers may use; built once per gateway in `start()`. */
export interface SocketContext {
  config: GatewayConfig;
  io: GatewayServer;
  logger: Logger;
  metrics: Metrics;
  verifier: TokenVerifier;
  events: EventStore;
  presence: PresenceStore;
  /** realtime.evictions for the re-subscription rule; absent: no rule */
  evictions?: EvictionRegistry;
  /** the engine-level connection accounting; every Engine.IO session has a record there */
  admission: EngineAdmission;
  eventLimiter: EventLimiter;
  isDraining(): boolean;
}
