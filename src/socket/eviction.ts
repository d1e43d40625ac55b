/** Eviction on this instance: the user's sockets leave the ticket room and get `ticket:revoked`. */
import { coerceError } from "../errors.js";
import { userRoom } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { revoke } from "./subscriptions.js";

export async function evictLocal(ctx: SocketContext, ticketId: string, userId: string, reason: string): Promise<void> {
  // every instance hears every eviction: remember it for the re-subscription rule before anything else
  ctx.evictions?.note(ticketId, userId);
  const ids = ctx.io.of("/").adapter.rooms.get(userRoom(userId));
  if (!ids) return;
  const sockets = [...ids].map((id) => ctx.io.of("/").sockets.get(id)).filter((s): s is GatewaySocket => s !== undefined);
  await Promise.all(
    sockets.map(async (socket) => {
      try {
        await revoke(ctx, socket, ticketId, reason);
      } catch (error) {
        ctx.logger.warn({ err: coerceError(error).message, ticketId, socketId: socket.id }, "eviction failed");
      }
    }),
  );
}
