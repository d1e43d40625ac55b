/**
 * The pipeline suite runs once per event source: `forEachEventSource((source) => describe(...))`.
 * While a source's block runs, `createTestDatabase` makes its databases on the matching server
 * (the replication source needs wal_level=logical: test/support/logical-postgres.ts) and
 * `clusterEnv` gives its gateways EVENT_SOURCE (and a REPLICATION_SLOT of the database's own).
 */
import type { EventSource } from "../../src/config.js";

export const EVENT_SOURCES: readonly EventSource[] = ["queue", "replication"];

let current: EventSource | undefined;

/** the source of the block running now; undefined outside `forEachEventSource` */
export function currentEventSource(): EventSource | undefined {
  return current;
}

export function forEachEventSource(body: (source: EventSource) => void, sources: readonly EventSource[] = EVENT_SOURCES): void {
  for (const source of sources) {
    describe(`[EVENT_SOURCE=${source}]`, function () {
      before(() => {
        current = source;
      });
      after(() => {
        current = undefined;
      });
      body(source);
    });
  }
}

/** the slot (and publication) name of a test database: its own name, so databases never share one */
export function slotFor(databaseUrl: string): string {
  return new URL(databaseUrl).pathname.slice(1);
}

/** The environment that selects the current source for a gateway on `databaseUrl`. */
export function eventSourceEnv(databaseUrl: string): Record<string, string> {
  if (!current) return {};
  return current === "replication" ? { EVENT_SOURCE: "replication", REPLICATION_SLOT: slotFor(databaseUrl) } : { EVENT_SOURCE: "queue" };
}
