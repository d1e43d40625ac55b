/** ticket:subscribe / ticket:unsubscribe, and removal from a room (revocation, eviction, disconnect). */
import { mayAccess } from "../auth/jwt.js";
import { ClientError, ErrorCode, coerceError } from "../errors.js";
import type { PresenceChange, PresenceSnapshot } from "../presence/types.js";
import { ticketRoom, type SubscribeResult, type Viewer } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { assertNotEvicted } from "./eviction-rule.js";
import { stopTyping } from "./typing.js";

const NO_VIEWERS: PresenceSnapshot = { viewers: [], rev: 0 };

export function viewerOf(socket: GatewaySocket): Viewer {
  const { sub, name, role } = socket.data.claims;
  return { userId: sub, name, role };
}

/**
 * Send the room its new viewer list; every instance may call it, `rev` orders the lists. `except`:
 * a subscriber whose ack carries this very list (and its rev) needs no copy of its own. `local`:
 * only this instance's sockets can be in the room (see PresenceChange.remote).
 */
export function announcePresence(ctx: SocketContext, ticketId: string, snapshot: PresenceSnapshot, except?: string, local = false): void {
  const room = (local ? ctx.io.local : ctx.io).to(ticketRoom(ticketId));
  (except === undefined ? room : room.except(except)).emit("ticket:presence", { ticketId, viewers: snapshot.viewers, rev: snapshot.rev });
}

/** Announce the changes the presence store finds by itself (a dead instance's viewers swept). */
export function watchPresence(ctx: SocketContext): void {
  ctx.presence.onChange((ticketId, snapshot) => announcePresence(ctx, ticketId, snapshot));
}

async function applyChange(ctx: SocketContext, ticketId: string, change: Promise<PresenceChange>, except?: string): Promise<PresenceSnapshot> {
  try {
    const result = await change;
    // no other instance holds a viewer of the ticket: a local emit, no Redis publish
    if (result.changed) announcePresence(ctx, ticketId, result, except, result.remote === false);
    return result;
  } catch (error) {
    // presence is advisory: its outage must not fail a subscription
    ctx.logger.warn({ err: coerceError(error), ticketId }, "presence update failed");
    return NO_VIEWERS;
  }
}

/**
 * Subscribe: authorize, join the room (presence and typing), then attach to the ticket's stream.
 * The ack is written by the delivery layer in the same synchronous step that turns live delivery
 * on, so the socket sees `missed`, then live events, with no gap and no repeat between them.
 */
export async function subscribe(
  ctx: SocketContext,
  socket: GatewaySocket,
  ticketId: string,
  sinceSeq: number | undefined,
  respond: (result: SubscribeResult) => void,
): Promise<void> {
  const claims = socket.data.claims;
  if (!mayAccess(claims, ticketId)) throw new ClientError(ErrorCode.FORBIDDEN, `your token does not grant ticket ${ticketId}`);
  await assertNotEvicted(ctx, claims, ticketId);
  const tickets = socket.data.tickets;
  const fresh = !tickets.has(ticketId);
  const max = ctx.config.maxSubscriptionsPerSocket;
  if (fresh && max > 0 && tickets.size >= max) {
    throw new ClientError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `a socket may hold at most ${max} subscriptions`);
  }
  if (fresh) {
    // claimed before any await, so a concurrent subscribe, refresh or eviction sees it
    tickets.add(ticketId);
    ctx.metrics.subscriptions.inc();
    ctx.delivery.retain(ticketId);
  }
  // left out of live delivery until the ack below is written
  const attachment = ctx.delivery.attach(ticketId, socket.id, sinceSeq);
  try {
    if (fresh) await socket.join(ticketRoom(ticketId));
    const presence = fresh
      ? // the ack below carries this list: the subscriber is not sent its own copy
        await applyChange(ctx, ticketId, ctx.presence.join(ticketId, socket.id, viewerOf(socket)), socket.id)
      : await ctx.presence.viewers(ticketId).catch(() => NO_VIEWERS);
    await attachment.complete((history) => {
      if (!tickets.has(ticketId) || !socket.connected) throw withdrawn(ticketId);
      ctx.metrics.recoveredEvents.inc(history.missed.length);
      respond({ ticketId, ...history, viewers: presence.viewers, presenceRev: presence.rev });
    });
  } catch (error) {
    attachment.cancel();
    if (!tickets.has(ticketId) || !socket.connected) {
      // revoked, evicted or unsubscribed meanwhile: a presence join that came after the leave is taken back
      if (fresh) await applyChange(ctx, ticketId, ctx.presence.leave(ticketId, socket.id, claims.sub));
      throw withdrawn(ticketId);
    }
    if (fresh) await leaveRoom(ctx, socket, ticketId);
    if (error instanceof ClientError) throw error;
    ctx.logger.warn({ err: coerceError(error), ticketId }, "history read failed");
    throw new ClientError(ErrorCode.UNAVAILABLE, "ticket history is unavailable, retry later");
  }
}

function withdrawn(ticketId: string): ClientError {
  return new ClientError(ErrorCode.FORBIDDEN, `the subscription to ticket ${ticketId} was withdrawn while it was being set up`);
}

export async function unsubscribe(ctx: SocketContext, socket: GatewaySocket, ticketId: string): Promise<object> {
  if (!socket.data.tickets.has(ticketId)) throw new ClientError(ErrorCode.NOT_SUBSCRIBED, `not subscribed to ticket ${ticketId}`);
  await leaveRoom(ctx, socket, ticketId);
  return {};
}

/** Leave the room, stop typing there, and leave the viewer list (announced when it changed). */
export async function leaveRoom(ctx: SocketContext, socket: GatewaySocket, ticketId: string): Promise<void> {
  if (!socket.data.tickets.delete(ticketId)) return;
  ctx.metrics.subscriptions.dec();
  ctx.delivery.release(ticketId);
  stopTyping(socket, ticketId);
  await socket.leave(ticketRoom(ticketId));
  await applyChange(ctx, ticketId, ctx.presence.leave(ticketId, socket.id, socket.data.claims.sub));
}

/** Remove the socket from a room it may no longer see, and tell it why. */
export async function revoke(ctx: SocketContext, socket: GatewaySocket, ticketId: string, reason: string): Promise<void> {
  if (!socket.data.tickets.has(ticketId)) return;
  await leaveRoom(ctx, socket, ticketId);
  socket.emit("ticket:revoked", { ticketId, reason });
}

/** On disconnect: leave every room's viewer list and tell the rooms. */
export async function releaseSubscriptions(ctx: SocketContext, socket: GatewaySocket): Promise<void> {
  const tickets = [...socket.data.tickets];
  socket.data.tickets.clear();
  ctx.metrics.subscriptions.dec(tickets.length);
  for (const ticketId of tickets) ctx.delivery.release(ticketId);
  stopTyping(socket);
  await Promise.all(tickets.map((ticketId) => applyChange(ctx, ticketId, ctx.presence.leave(ticketId, socket.id, socket.data.claims.sub))));
}
