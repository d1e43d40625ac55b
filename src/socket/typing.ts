/**
 * ticket:typing relay, with the server owning the state:
 * - relayed to the ticket's other subscribers, never to the sender's own sockets (any tab);
 * - only changes are relayed, plus a refresh at most every TYPING_REFRESH_MS while `typing: true`
 *   keeps coming, so a client may send it on every keystroke without fanning each one out;
 * - a socket that stops sending is shown as stopped TYPING_TTL_MS after its last `typing: true`,
 *   and at once when it unsubscribes, is revoked or disconnects;
 * - starts and refreshes are capped at TYPING_STARTS_PER_WINDOW per TYPING_WINDOW_MS per socket
 *   (RATE_LIMITED beyond), on top of EVENT_RATE_PER_SOCKET: typing is the one event whose every
 *   relay goes to a whole room. A `typing: false` for a shown indicator is never refused, so the
 *   cap can never leave a stale "typing" behind.
 */
import { ClientError, ErrorCode } from "../errors.js";
import { ticketRoom, userRoom } from "../protocol.js";
import type { SocketTyping } from "../io-types.js";
import type { GatewaySocket, SocketContext } from "./context.js";

export const TYPING_TTL_MS = 8000;
export const TYPING_REFRESH_MS = 3000;
export const TYPING_STARTS_PER_WINDOW = 6;
export const TYPING_WINDOW_MS = 3000;


function broadcast(socket: GatewaySocket, ticketId: string, typing: boolean): void {
  const { sub, name } = socket.data.claims;
  socket.to(ticketRoom(ticketId)).except(userRoom(sub)).emit("ticket:typing", { ticketId, userId: sub, name, typing });
}

function expiry(socket: GatewaySocket, state: SocketTyping, ticketId: string): NodeJS.Timeout {
  return setTimeout(() => {
    state.tickets.delete(ticketId);
    if (socket.connected && socket.data.tickets.has(ticketId)) broadcast(socket, ticketId, false);
  }, TYPING_TTL_MS);
}

export function relayTyping(_ctx: SocketContext, socket: GatewaySocket, ticketId: string, typing: boolean): { relayed: boolean } {
  if (!socket.data.tickets.has(ticketId)) throw new ClientError(ErrorCode.NOT_SUBSCRIBED, `subscribe to ticket ${ticketId} before typing on it`);
  const state = (socket.data.typing ??= { tickets: new Map(), windowStart: 0, starts: 0 });
  const shown = state.tickets.get(ticketId);
  if (!typing) {
    if (!shown) return { relayed: false };
    clearTimeout(shown.timer);
    state.tickets.delete(ticketId);
    broadcast(socket, ticketId, false);
    return { relayed: true };
  }
  const now = Date.now();
  if (shown && now - shown.relayedAt < TYPING_REFRESH_MS) {
    // still typing: push the expiry back, relay nothing
    clearTimeout(shown.timer);
    shown.timer = expiry(socket, state, ticketId);
    return { relayed: false };
  }
  if (now - state.windowStart >= TYPING_WINDOW_MS) {
    state.windowStart = now;
    state.starts = 0;
  }
  if (state.starts >= TYPING_STARTS_PER_WINDOW) {
    const retry = TYPING_WINDOW_MS - (now - state.windowStart);
    throw new ClientError(ErrorCode.RATE_LIMITED, `typing started too often (at most ${TYPING_STARTS_PER_WINDOW} per ${TYPING_WINDOW_MS}ms), retry in ${retry}ms`);
  }
  state.starts += 1;
  if (shown) clearTimeout(shown.timer);
  state.tickets.set(ticketId, { timer: expiry(socket, state, ticketId), relayedAt: now });
  broadcast(socket, ticketId, true);
  return { relayed: true };
}

/** Stop typing on `ticketId` (or every ticket) when the socket leaves it. */
export function stopTyping(socket: GatewaySocket, ticketId?: string): void {
  const state = socket.data.typing;
  if (!state) return;
  for (const [id, shown] of state.tickets) {
    if (ticketId !== undefined && id !== ticketId) continue;
    clearTimeout(shown.timer);
    state.tickets.delete(id);
    broadcast(socket, id, false);
  }
}
