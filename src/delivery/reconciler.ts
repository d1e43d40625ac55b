/**
 * Step 5: each instance repairs its rooms from the outbox, continuously.
 *
 * - A gap the ledger reports (an event skipped ahead) is read from `realtime.ticket_events` at
 *   once: one repair at a time per ticket, page by page with no row cap, retried with backoff
 *   until it succeeds.
 * - Every RECONCILE_INTERVAL the instance reads the heads of all the rooms it holds in one query.
 *   A room still short of its head a grace period later (the leader publishes right after its
 *   commit, so a fresh head is usually on its way) is repaired the same way. This catches what no
 *   later event reveals: the tail of a ticket that went quiet, a whole burst a Redis blip ate.
 * - The same round reads the recent evictions of the rooms it holds and applies them to their
 *   sockets, so an eviction reaches every instance even when its message was lost.
 */
import { coerceError } from "../errors.js";
import { backoffMs } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { Eviction, History } from "./history.js";
import { EVICTION_OVERLAP_MS } from "./dispatcher.js";
import type { Ledger } from "./ledger.js";

/** Heads are read for at most this many tickets per query. */
const HEADS_BATCH = 5000;

export interface ReconcilerOptions {
  ledger: Ledger;
  history: History;
  intervalMs: number;
  logger: Logger;
  metrics: Metrics;
  /** apply evictions found by the round (idempotent) */
  applyEvictions(evictions: Eviction[]): void;
}

export function createReconciler({ ledger, history, intervalMs, logger, metrics, applyEvictions }: ReconcilerOptions) {
  const log = logger.child({ component: "reconciler" });
  const graceMs = Math.min(500, intervalMs / 2);
  const repairing = new Set<string>();
  const again = new Set<string>();
  const retryTimers = new Map<string, NodeJS.Timeout>();
  let stopped = false;
  let roundTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let round: Promise<void> = Promise.resolve();
  let failures = 0;

  /** Read the ticket's gap from the outbox and feed it to the ledger until none is left. */
  async function repair(ticketId: string, attempt = 0): Promise<void> {
    if (stopped) return;
    if (repairing.has(ticketId)) {
      again.add(ticketId);
      return;
    }
    repairing.add(ticketId);
    try {
      for (let gap = ledger.gap(ticketId); gap && !stopped; gap = ledger.gap(ticketId)) {
        const events = await history.range(ticketId, gap.after, gap.upTo);
        if (events.length === 0 || events[0]!.seq! > gap.after + 1) {
          // the outbox no longer holds the start of the gap (pruned past retention)
          const resume = events.length === 0 ? gap.upTo : events[0]!.seq! - 1;
          log.warn({ ticketId, after: gap.after, resume }, "events past retention cannot be repaired; skipping ahead");
          ledger.skipTo(ticketId, resume);
        }
        const before = ledger.delivered(ticketId) ?? 0;
        for (const event of events) ledger.accept(event);
        metrics.reconciledEvents.inc(Math.max(0, (ledger.delivered(ticketId) ?? 0) - before));
      }
      metrics.repairs.inc({ result: "ok" });
      clearTimeout(retryTimers.get(ticketId));
      retryTimers.delete(ticketId);
    } catch (error) {
      metrics.repairs.inc({ result: "failed" });
      const delay = backoffMs(attempt, 200, 5000);
      log.warn({ err: coerceError(error), ticketId, retryInMs: delay }, "repair failed; retrying");
      clearTimeout(retryTimers.get(ticketId));
      if (!stopped) retryTimers.set(ticketId, setTimeout(() => void repair(ticketId, attempt + 1), delay));
    } finally {
      repairing.delete(ticketId);
      if (again.delete(ticketId)) void repair(ticketId);
    }
  }

  async function reconcile(): Promise<void> {
    const positioned = ledger.positioned();
    const suspects: Array<[string, number]> = [];
    for (let i = 0; i < positioned.length; i += HEADS_BATCH) {
      const part = positioned.slice(i, i + HEADS_BATCH);
      const heads = await history.heads(part.map(([ticketId]) => ticketId));
      for (const [ticketId, delivered] of part) {
        const head = heads.get(ticketId);
        if (head !== undefined && head > delivered) suspects.push([ticketId, head]);
      }
    }
    // only the evictions of rooms this instance holds: their sockets are the ones to remove
    const held = ledger.tickets();
    if (held.length > 0) applyEvictions(await history.recentEvictions(EVICTION_OVERLAP_MS, held));
    if (suspects.length === 0) return;
    // the leader publishes right after its commit: give live delivery a moment before repairing
    clearTimeout(graceTimer);
    graceTimer = setTimeout(() => {
      for (const [ticketId, head] of suspects) {
        const delivered = ledger.delivered(ticketId);
        if (delivered !== undefined && delivered < head) ledger.want(ticketId, head);
      }
    }, graceMs);
  }

  function schedule(): void {
    if (stopped) return;
    roundTimer = setTimeout(() => {
      round = reconcile()
        .then(() => {
          if (failures > 0) log.info({ after: failures }, "reconciliation works again");
          failures = 0;
        })
        .catch((error: unknown) => {
          if (failures++ === 0) log.warn({ err: coerceError(error) }, "reconciliation round failed; retrying every interval");
        })
        .finally(schedule);
    }, intervalMs);
  }

  return {
    start: schedule,
    /** the ledger found a gap */
    repair: (ticketId: string) => void repair(ticketId),
    /** true while the last rounds failed (PostgreSQL unreachable from this instance) */
    failing: () => failures > 1,
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(roundTimer);
      clearTimeout(graceTimer);
      for (const timer of retryTimers.values()) clearTimeout(timer);
      await round;
    },
  };
}
