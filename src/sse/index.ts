/**
 * Server-Sent Events for read-only clients (the MVP's `EventSource` front end, dashboards,
 * `curl -N`): `GET /sse?tickets=1,2`. Streams ride the same delivery pipeline as sockets (see
 * src/delivery/local-subscribers.ts); this module holds the instance's open streams for the
 * per-instance cap, evictions and the drain.
 */
import { sleep } from "../lifecycle.js";
import { sseHandler, type SseDeps, type SseRegistry } from "./route.js";
import type { SseStream } from "./stream.js";

export type Sse = ReturnType<typeof createSse>;

export type { SseDeps };

export function createSse(deps: SseDeps) {
  const streams = new Set<SseStream>();
  let reserved = 0;
  const registry: SseRegistry = {
    count: () => reserved,
    reserve() {
      reserved += 1;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        reserved -= 1;
      };
    },
    add: (stream) => void streams.add(stream),
    remove: (stream) => void streams.delete(stream),
  };

  return {
    handler: sseHandler(deps, registry),
    /** open streams and admissions in progress */
    count: () => registry.count(),
    /**
     * The user's streams stop getting the ticket (`ticket:revoked`); as in src/socket/eviction.ts,
     * a stream whose token was issued after the eviction (`evictedAt`, ms) keeps it.
     */
    evict(ticketId: string, userId: string, reason: string, evictedAt?: number): void {
      for (const stream of [...streams]) {
        if (stream.claims.sub !== userId || !stream.holds(ticketId)) continue;
        const iat = stream.claims.iat;
        if (evictedAt !== undefined && iat !== undefined && iat * 1000 > evictedAt) continue;
        stream.revoke(ticketId, reason);
      }
    },
    /**
     * Drain: end every stream, spread over `spreadMs` with jitter; each client's EventSource
     * reconnects (through the balancer, to a ready instance) with its cursor and resumes there.
     * Resolves with the number of streams left at the deadline.
     */
    async drain({ spreadMs, deadlineMs }: { spreadMs: number; deadlineMs: number }): Promise<number> {
      const timers = [...streams].map((stream) => setTimeout(() => stream.close("draining"), Math.random() * spreadMs));
      const deadline = Date.now() + deadlineMs;
      while (streams.size > 0 && Date.now() < deadline) await sleep(50);
      for (const timer of timers) clearTimeout(timer);
      return streams.size;
    },
    /** end whatever is left (stop) */
    close(): void {
      for (const stream of [...streams]) stream.close("server stop");
    },
  };
}
