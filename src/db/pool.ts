/** pg pools and clients with error listeners, timeouts and keepalives set once, here. */
import pg from "pg";
import type { Logger } from "../logger.js";

export function createPool(connectionString: string, logger: Logger, options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5000,
    query_timeout: 10_000,
    keepAlive: true,
    application_name: "realtime-gateway",
    ...options,
  });
  // an idle client's connection dying is reported here; without a listener it would crash the process
  pool.on("error", (error) => logger.warn({ err: error, dependency: "postgres" }, "idle postgres connection failed"));
  return pool;
}

export function createClient(connectionString: string, applicationName: string): pg.Client {
  return new pg.Client({
    connectionString,
    connectionTimeoutMillis: 5000,
    query_timeout: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 2000,
    application_name: applicationName,
  });
}
