/**
 * The PostgreSQL side of a gateway: the connection (external or embedded), migrations at start,
 * the pool, and the eviction registry. The delivery pipeline (src/delivery) runs on the pool.
 */
import type pg from "pg";
import type { GatewayConfig } from "../config.js";
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { ResourceStack } from "../lifecycle.js";
import { startEmbedded, seedDemo } from "./embedded.js";
import { resolveEventSource, type EventSourceChoice } from "./event-source.js";
import { createEvictionRegistry, type EvictionRegistry } from "./evictions.js";
import { migrate } from "./migrate.js";
import { createPool } from "./pool.js";
import { collectListenerStats } from "../observability/listener-stats.js";

export interface Database {
  url: string;
  embedded: boolean;
  /** how the leader reads committed events (EVENT_SOURCE resolved against this server) */
  eventSource: EventSourceChoice;
  pool: pg.Pool;
  /** realtime.evictions, cached for the re-subscription rule */
  evictions: EvictionRegistry;
  /** a readiness reason, or undefined when PostgreSQL answers */
  check(): Promise<string | undefined>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  config: GatewayConfig;
  logger: Logger;
  metrics: Metrics;
}

export async function openDatabase({ config, logger, metrics }: DatabaseOptions): Promise<Database> {
  const stack = new ResourceStack();
  try {
    let url = config.databaseUrl;
    const embedded = url === undefined;
    if (url === undefined) {
      const server = await startEmbedded(config.dataDir, logger);
      stack.defer("embedded postgres", () => server.stop());
      url = server.url;
    }
    if (config.migrateOnStart) await migrate(url, config.pgChannel, logger);
    if (embedded) await seedDemo(url);
    const eventSource = await resolveEventSource(url, config.eventSource, config.replicationSlot, logger);
    const pool = createPool(url, logger);
    stack.defer("pg pool", () => pool.end());
    collectListenerStats(pool, metrics, logger);
    const evictions = createEvictionRegistry({ pool, logger });
    stack.defer("evictions", () => evictions.close());
    return {
      url,
      embedded,
      eventSource,
      pool,
      evictions,
      async check() {
        try {
          await withTimeout(pool.query("SELECT 1"), 1500, "postgres ping");
          return undefined;
        } catch (error) {
          return `postgres unreachable: ${coerceError(error).message}`;
        }
      },
      close: () => stack.close(),
    };
  } catch (error) {
    await stack.close().catch(() => undefined);
    throw error;
  }
}
