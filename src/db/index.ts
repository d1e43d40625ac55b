/**
 * The PostgreSQL side of a gateway: the connection (external or embedded), migrations at start,
 * the history reader and the elected listener.
 */
import type { GatewayConfig } from "../config.js";
import { coerceError } from "../errors.js";
import type { EventStore } from "../events/types.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { ResourceStack } from "../lifecycle.js";
import { startEmbedded, seedDemo } from "./embedded.js";
import { createPgEventStore, readSince } from "./event-store.js";
import type { TicketUpdate } from "../protocol.js";
import { createEvictionRegistry, type EvictionRegistry } from "./evictions.js";
import { Listener, type Dispatcher } from "./listener.js";
import { migrate } from "./migrate.js";
import { createPool } from "./pool.js";
import { collectListenerStats } from "../observability/listener-stats.js";

export interface Database {
  url: string;
  embedded: boolean;
  events: EventStore;
  /** events of these tickets written since a time (replay after a Redis outage) */
  readSince(ticketIds: string[], since: Date): Promise<TicketUpdate[]>;
  /** realtime.evictions, cached for the re-subscription rule */
  evictions: EvictionRegistry;
  listener: Listener | undefined;
  /** a readiness reason, or undefined when PostgreSQL answers */
  check(): Promise<string | undefined>;
  startListener(dispatcher: Dispatcher): Promise<void>;
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
    const pool = createPool(url, logger);
    stack.defer("pg pool", () => pool.end());
    collectListenerStats(pool, metrics, logger);
    const evictions = createEvictionRegistry({ pool, logger, retentionMs: config.eventRetentionMs });
    stack.defer("evictions", () => evictions.close());
    let listener: Listener | undefined;
    const connectionString = url;
    return {
      url,
      embedded,
      events: createPgEventStore(pool),
      readSince: (ticketIds, since) => readSince(pool, ticketIds, since),
      evictions,
      get listener() {
        return listener;
      },
      async check() {
        try {
          await withTimeout(pool.query("SELECT 1"), 1500, "postgres ping");
          return undefined;
        } catch (error) {
          return `postgres unreachable: ${coerceError(error).message}`;
        }
      },
      async startListener(dispatcher) {
        listener = new Listener({
          connectionString,
          channel: config.pgChannel,
          retentionMs: config.eventRetentionMs,
          logger,
          metrics,
          dispatcher,
        });
        const started = listener;
        started.start();
        stack.defer("listener", () => started.stop());
      },
      close: () => stack.close(),
    };
  } catch (error) {
    await stack.close().catch(() => undefined);
    throw error;
  }
}
