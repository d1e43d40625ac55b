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

export async function assertNotEvicted(ctx: SocketContext, claims: Claims, ticketId: string): Promise<void> {
  if (!ctx.evictions) return;
  let evictedAt: number | undefined;
  try {
    evictedAt = await ctx.evictions.evictedAt(ticketId, claims.sub);
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
