/**
 * The leader prunes events past EVENT_RETENTION, in small batches so no statement holds locks for
 * long, and never an unsequenced one (it has not been delivered yet). Evictions older than the
 * retention go too: a token issued before them has long expired.
 */
import type pg from "pg";
import { sleep } from "../lifecycle.js";
import type { Logger } from "../logger.js";

const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 1000;

export interface Retention {
  /** prune when the last run is PRUNE_EVERY_MS old, or someone asked for one */
  maybePrune(session: pg.Client): Promise<void>;
  /** resolves after the leader's next prune (never, on a standby) */
  pruneNow(): Promise<void>;
  stop(): void;
}

export function createRetention(retentionMs: number, logger: Logger, onAsk: () => void): Retention {
  let lastPrune = 0;
  let stopped = false;
  const waiters: Array<() => void> = [];

  async function prune(session: pg.Client): Promise<void> {
    lastPrune = Date.now();
    let total = 0;
    for (;;) {
      const { rowCount } = await session.query(
        `DELETE FROM realtime.ticket_events WHERE id IN (
           SELECT id FROM realtime.ticket_events
           WHERE created_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000) AND seq IS NOT NULL
           ORDER BY created_at LIMIT $2)`,
        [retentionMs, PRUNE_BATCH],
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_BATCH || stopped) break;
      await sleep(10);
    }
    await session.query("DELETE FROM realtime.evictions WHERE evicted_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000)", [retentionMs]);
    if (total > 0) logger.info({ pruned: total }, "pruned events past retention");
  }

  return {
    async maybePrune(session) {
      if (waiters.length === 0 && Date.now() - lastPrune < PRUNE_EVERY_MS) return;
      const asked = waiters.splice(0);
      await prune(session);
      for (const resolve of asked) resolve();
    },
    pruneNow() {
      return new Promise((resolve) => {
        waiters.push(resolve);
        onAsk();
      });
    },
    stop() {
      stopped = true;
    },
  };
}
