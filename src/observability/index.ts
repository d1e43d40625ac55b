/**
 * Observability wiring that needs the Socket.IO server once its adapter is chosen: the
 * MAX_CONNECTIONS gauge the alerts divide by, and the optional
 * admin UI. (The listener-health gauges are wired with the pool, in src/db/index.ts.)
 */
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { RedisClients } from "../redis.js";
import type { GatewayServer } from "../socket/context.js";
import { ADMIN_UI_NAMESPACE, ADMIN_UI_USERNAME, mountAdminUi } from "./admin-ui.js";

/** Call after `io.adapter(...)`; returns the releaser for the gateway's resource stack. */
export function setupObservability(io: GatewayServer, config: GatewayConfig, metrics: Metrics, logger: Logger, redis?: RedisClients): () => void {
  metrics.maxConnections.set(config.maxConnections);
  // exported at 0 from the start, so rate() and alerts see the series before the first login
  for (const result of ["ok", "invalid", "throttled"]) metrics.adminLogins.inc({ result }, 0);
  if (!config.adminUiPassword) return () => undefined;
  const stop = mountAdminUi(io, config.adminUiPassword, config.instanceId, { config, redis, metrics, logger });
  logger.info({ namespace: ADMIN_UI_NAMESPACE, username: ADMIN_UI_USERNAME }, "admin UI enabled (basic auth, read-only)");
  return stop;
}
