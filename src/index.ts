/** The package's public API. */
export { createGateway, type Gateway, type GatewayDeps } from "./gateway.js";
export { loadConfig, ConfigError, type GatewayConfig } from "./config.js";
export { migrate } from "./db/migrate.js";
export { mintToken } from "./auth/jwt.js";
export { HandshakeCode, ErrorCode } from "./errors.js";
export * from "./protocol.js";
