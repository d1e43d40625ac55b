/** Token lifetime on a live connection: expiry ends it, `auth:refresh` extends it. */
import { InvalidTokenError, mayAccess } from "../auth/jwt.js";
import { ClientError, ErrorCode } from "../errors.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { revoke } from "./subscriptions.js";

const MAX_TIMER_MS = 2 ** 31 - 1;

/** (Re)arm the timer that disconnects the socket when its token expires. */
export function armExpiry(socket: GatewaySocket): void {
  clearTimeout(socket.data.expiryTimer);
  const expMs = socket.data.claims.exp * 1000;
  const fire = () => {
    const left = expMs - Date.now();
    if (left > 0) {
      socket.data.expiryTimer = setTimeout(fire, Math.min(left, MAX_TIMER_MS));
      return;
    }
    socket.emit("auth:expired", { expiredAt: new Date(expMs).toISOString() });
    socket.disconnect(true);
  };
  socket.data.expiryTimer = setTimeout(fire, Math.min(Math.max(0, expMs - Date.now()), MAX_TIMER_MS));
}

export function disarmExpiry(socket: GatewaySocket): void {
  clearTimeout(socket.data.expiryTimer);
  socket.data.expiryTimer = undefined;
}

export async function refresh(ctx: SocketContext, socket: GatewaySocket, token: string): Promise<{ expiresAt: string }> {
  let claims;
  try {
    claims = await ctx.verifier.verify(token);
  } catch (error) {
    const reason = error instanceof InvalidTokenError ? error.message : "token could not be verified";
    throw new ClientError(ErrorCode.UNAUTHORIZED, `token refused: ${reason}; the current token still applies`);
  }
  if (claims.sub !== socket.data.claims.sub) {
    throw new ClientError(ErrorCode.FORBIDDEN, "the new token belongs to another user; the current token still applies");
  }
  socket.data.claims = claims;
  armExpiry(socket);
  for (const ticketId of [...socket.data.tickets]) {
    if (!mayAccess(claims, ticketId)) await revoke(ctx, socket, ticketId, "access no longer granted by your token");
  }
  return { expiresAt: new Date(claims.exp * 1000).toISOString() };
}
