/**
 * Redis pub/sub is fire-and-forget: while this instance's Redis connection is down, room emits
 * from the leader never reach it, and its clients would only notice at the next event. So when
 * Redis comes back, the instance replays from the outbox, to its own sockets only, every event of
 * its local ticket rooms written since the outage began (minus a margin for transactions that
 * were open at the time). Clients drop the seqs they already have.
 */
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { TicketUpdate } from "../protocol.js";
import type { GatewayServer } from "../socket/context.js";

/** Events written up to this long before the outage was noticed are replayed too. */
const MARGIN_MS = 60_000;
/** ioredis re-subscribes as it becomes ready; give the subscriptions a moment to land. */
const SETTLE_MS = 500;
const TICKET_ROOM = /^ticket:(.+)$/;

export type ReadSince = (ticketIds: string[], since: Date) => Promise<TicketUpdate[]>;

export function createOutageReplay(io: GatewayServer, readSince: ReadSince, logger: Logger) {
  let outageSince: number | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function replay(since: number): Promise<void> {
    const ticketIds = [...io.of("/").adapter.rooms.keys()].map((room) => TICKET_ROOM.exec(room)?.[1]).filter((id): id is string => !!id);
    if (ticketIds.length === 0) return;
    const updates = await readSince(ticketIds, new Date(since - MARGIN_MS));
    for (const update of updates) io.local.to(`ticket:${update.ticketId}`).emit("ticket:update", update);
    logger.info({ tickets: ticketIds.length, events: updates.length }, "replayed events missed during the Redis outage");
  }

  return {
    /** call on every Redis readiness change */
    onRedisChange(ready: boolean): void {
      clearTimeout(timer);
      if (!ready) {
        outageSince ??= Date.now();
        return;
      }
      const since = outageSince;
      if (since === undefined) return;
      timer = setTimeout(() => {
        outageSince = undefined;
        replay(since).catch((error: unknown) => {
          // keep the outage open: the next readiness change retries
          outageSince ??= since;
          logger.warn({ err: coerceError(error).message }, "replay after the Redis outage failed");
        });
      }, SETTLE_MS);
    },
    stop(): void {
      clearTimeout(timer);
    },
  };
}
