/** Eviction on this instance: the user's sockets leave the ticket room and get `ticket:revoked`. */
import { coerceError } from "../errors.js";
import { userRoom } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { revoke } from "./subscriptions.js";

/**
 * `evictedAt` (ms) is the eviction's time in realtime.evictions: a socket whose token was issued
 * after it subscribed under the new rule and stays. The same eviction arrives more than once (its
 * message, then every reconciliation round for a while); applying it again changes nothing.
 */
export async function evictLocal(ctx: SocketContext, ticketId: string, userId: string, reason: string, evictedAt?: number): Promise<void> {
  // every instance hears every eviction: remember it for the re-subscription rule before anything else
  ctx.evictions?.note(ticketId, userId, evictedAt);
  const ids = ctx.io.of("/").adapter.rooms.get(userRoom(userId));
  if (!ids) return;
  const sockets = [...ids]
    .map((id) => ctx.io.of("/").sockets.get(id))
    .filter((s): s is GatewaySocket => s !== undefined && s.data.tickets.has(ticketId))
    .filter((s) => evictedAt === undefined || s.data.claims.iat === undefined || s.data.claims.iat * 1000 <= evictedAt);
  await Promise.all(
    sockets.map(async (socket) => {
      try {
        await revoke(ctx, socket, ticketId, reason);
      } catch (error) {
        ctx.logger.warn({ err: coerceError(error), ticketId, socketId: socket.id }, "eviction failed");
      }
    }),
  );
}
