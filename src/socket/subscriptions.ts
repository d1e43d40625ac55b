/** ticket:subscribe / ticket:unsubscribe, and removal from a room (revocation, eviction, disconnect). */
import { mayAccess } from "../auth/jwt.js";
import { ClientError, ErrorCode, coerceError } from "../errors.js";
import { ticketRoom, type SubscribeResult, type Viewer } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";

export function viewerOf(socket: GatewaySocket): Viewer {
  const { sub, name, role } = socket.data.claims;
  return { userId: sub, name, role };
}

async function announce(ctx: SocketContext, ticketId: string, viewers: Promise<Viewer[]>): Promise<Viewer[]> {
  try {
    const list = await viewers;
    ctx.io.to(ticketRoom(ticketId)).emit("ticket:presence", { ticketId, viewers: list });
    return list;
  } catch (error) {
    // presence is advisory: its outage must not fail a subscription
    ctx.logger.warn({ err: coerceError(error).message, ticketId }, "presence update failed");
    return [];
  }
}

export async function subscribe(
  ctx: SocketContext,
  socket: GatewaySocket,
  ticketId: string,
  sinceSeq: number | undefined,
): Promise<SubscribeResult> {
  if (!mayAccess(socket.data.claims, ticketId)) throw new ClientError(ErrorCode.FORBIDDEN, `your token does not grant ticket ${ticketId}`);
  const tickets = socket.data.tickets;
  const fresh = !tickets.has(ticketId);
  const max = ctx.config.maxSubscriptionsPerSocket;
  if (fresh && max > 0 && tickets.size >= max) {
    throw new ClientError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `a socket may hold at most ${max} subscriptions`);
  }
  if (fresh) {
    // join first, then read history: an event committed in between arrives live and in `missed`,
    // never in neither (the client drops the duplicate seq)
    await socket.join(ticketRoom(ticketId));
    tickets.add(ticketId);
    ctx.metrics.subscriptions.inc();
  }
  let history;
  try {
    history = await ctx.events.history(ticketId, sinceSeq);
  } catch (error) {
    if (fresh) await leaveRoom(ctx, socket, ticketId, false);
    ctx.logger.warn({ err: coerceError(error).message, ticketId }, "history read failed");
    throw new ClientError(ErrorCode.UNAVAILABLE, "ticket history is unavailable, retry later");
  }
  ctx.metrics.recoveredEvents.inc(history.missed.length);
  const viewers = fresh
    ? await announce(ctx, ticketId, ctx.presence.join(ticketId, socket.id, viewerOf(socket)))
    : await ctx.presence.viewers(ticketId).catch(() => []);
  return { ticketId, seq: history.seq, missed: history.missed, recovered: history.recovered, viewers };
}

export async function unsubscribe(ctx: SocketContext, socket: GatewaySocket, ticketId: string): Promise<object> {
  if (!socket.data.tickets.has(ticketId)) throw new ClientError(ErrorCode.NOT_SUBSCRIBED, `not subscribed to ticket ${ticketId}`);
  await leaveRoom(ctx, socket, ticketId, true);
  return {};
}

/** Leave the room and the viewer list; `announceChange` is false while the socket is going away anyway. */
export async function leaveRoom(ctx: SocketContext, socket: GatewaySocket, ticketId: string, announceChange = true): Promise<void> {
  if (!socket.data.tickets.delete(ticketId)) return;
  ctx.metrics.subscriptions.dec();
  await socket.leave(ticketRoom(ticketId));
  const viewers = ctx.presence.leave(ticketId, socket.id, socket.data.claims.sub);
  if (announceChange) await announce(ctx, ticketId, viewers);
  else await viewers.catch(() => undefined);
}

/** Remove the socket from a room it may no longer see, and tell it why. */
export async function revoke(ctx: SocketContext, socket: GatewaySocket, ticketId: string, reason: string): Promise<void> {
  if (!socket.data.tickets.has(ticketId)) return;
  await leaveRoom(ctx, socket, ticketId, true);
  socket.emit("ticket:revoked", { ticketId, reason });
}

/** On disconnect: leave every room's viewer list and tell the rooms. */
export async function releaseSubscriptions(ctx: SocketContext, socket: GatewaySocket): Promise<void> {
  const tickets = [...socket.data.tickets];
  socket.data.tickets.clear();
  ctx.metrics.subscriptions.dec(tickets.length);
  await Promise.all(
    tickets.map((ticketId) => announce(ctx, ticketId, ctx.presence.leave(ticketId, socket.id, socket.data.claims.sub))),
  );
}
