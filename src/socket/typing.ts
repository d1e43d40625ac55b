/**
 * ticket:typing relay. The server owns the expiry: a client that vanishes mid-typing is shown as
 * stopped after TYPING_TTL_MS, and a disconnect stops it at once.
 */
import { ClientError, ErrorCode } from "../errors.js";
import { ticketRoom } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";

export const TYPING_TTL_MS = 8000;
const typingTimers = new WeakMap<GatewaySocket, Map<string, NodeJS.Timeout>>();

function broadcast(socket: GatewaySocket, ticketId: string, typing: boolean): void {
  const { sub, name } = socket.data.claims;
  socket.to(ticketRoom(ticketId)).emit("ticket:typing", { ticketId, userId: sub, name, typing });
}

export function relayTyping(_ctx: SocketContext, socket: GatewaySocket, ticketId: string, typing: boolean): object {
  if (!socket.data.tickets.has(ticketId)) throw new ClientError(ErrorCode.NOT_SUBSCRIBED, `subscribe to ticket ${ticketId} first`);
  let timers = typingTimers.get(socket);
  if (!timers) typingTimers.set(socket, (timers = new Map()));
  clearTimeout(timers.get(ticketId));
  timers.delete(ticketId);
  if (typing) {
    const timer = setTimeout(() => {
      timers.delete(ticketId);
      if (socket.connected && socket.data.tickets.has(ticketId)) broadcast(socket, ticketId, false);
    }, TYPING_TTL_MS);
    timers.set(ticketId, timer);
  }
  broadcast(socket, ticketId, typing);
  return {};
}

/** Stop typing on `ticketId` (or every ticket) when the socket leaves it. */
export function stopTyping(socket: GatewaySocket, ticketId?: string): void {
  const timers = typingTimers.get(socket);
  if (!timers) return;
  for (const [id, timer] of timers) {
    if (ticketId !== undefined && id !== ticketId) continue;
    clearTimeout(timer);
    timers.delete(id);
    broadcast(socket, id, false);
  }
}
