/**
 * The re-subscription rule after an eviction: a user evicted from a ticket may subscribe to it
 * again only with a token issued (`iat`) after the eviction. Their old token usually still lists
 * the ticket (tokens outlive access changes); requiring a fresh one means the identity provider,
 * which knows the new access, has been asked again. A token without `iat` cannot prove that and is
 * refused. Rows age out of `realtime.evictions` after EVENT_RETENTION, and the rule with them.
 */
import { ClientError, ErrorCode, coerceError } from "../errors.js";
import type { Claims } from "../protocol.js";
import type { SocketContext } from "./context.js";
import { EVICTION_OVERLAP_MS } from "../delivery/dispatcher.js";

/**
 * How long the evictions loaded for a ticket are trusted while this instance holds its room: well
 * inside the reconciler's two-minute eviction window (less four RECONCILE_INTERVALs), so no
 * eviction since the load can fall out of it unseen. Elsewhere the registry's own 5 s apply.
 */
export const HELD_ROOM_TRUST_MS = 60_000;

export async function assertNotEvicted(ctx: SocketContext, claims: Claims, ticketId: string): Promise<void> {
  if (!ctx.evictions) return;
  let evictedAt: number | undefined;
  try {
    // a room this instance holds is reconciled every RECONCILE_INTERVAL, evictions of the last two
    // minutes included (each noted in the registry): its loaded evictions stay fresh for longer
    const trustMs = Math.min(HELD_ROOM_TRUST_MS, EVICTION_OVERLAP_MS - 4 * ctx.config.reconcileIntervalMs);
    const covered = trustMs > 0 && ctx.delivery.holds(ticketId) && ctx.delivery.healthy();
    evictedAt = await ctx.evictions.evictedAt(ticketId, claims.sub, covered ? trustMs : undefined);
  } catch (error) {
    ctx.logger.warn({ err: coerceError(error), ticketId }, "eviction lookup failed");
    throw new ClientError(ErrorCode.UNAVAILABLE, "access to the ticket cannot be checked right now, retry later");
  }
  if (evictedAt === undefined) return;
  // iat has whole seconds: a token from the same second as the eviction may predate it, so refuse it
  if (claims.iat !== undefined && claims.iat * 1000 > evictedAt) return;
  throw new ClientError(
    ErrorCode.FORBIDDEN,
    `you were removed from ticket ${ticketId} at ${new Date(evictedAt).toISOString()}; ` +
      "subscribe again with a token issued after that (auth:refresh or a new connection)",
  );
}
