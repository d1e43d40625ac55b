/**
 * Wires one accepted socket: its event handlers, its expiry, and its cleanup. The handlers are
 * built once per gateway (`createConnectionHandler`) and shared by every socket (Socket.IO calls
 * them with the socket as `this`): a socket costs its own state, not a closure per event.
 */
import { coerceError } from "../errors.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { guard, rejectUnknownEvent } from "./event-guard.js";
import { refreshSchema, subscribeSchema, typingSchema, unsubscribeSchema } from "./schemas.js";
import { armExpiry, disarmExpiry, refresh } from "./session.js";
import { releaseSubscriptions, subscribe, unsubscribe } from "./subscriptions.js";
import { relayTyping } from "./typing.js";
import { userRoom } from "../protocol.js";

/** The `io.on("connection")` listener of one gateway. */
export function createConnectionHandler(ctx: SocketContext): (socket: GatewaySocket) => void {
  const onSubscribe = guard(ctx, "ticket:subscribe", subscribeSchema, (socket, req, respond) => subscribe(ctx, socket, req.ticketId, req.sinceSeq, respond));
  const onUnsubscribe = guard(ctx, "ticket:unsubscribe", unsubscribeSchema, (socket, req) => unsubscribe(ctx, socket, req.ticketId));
  const onTyping = guard(ctx, "ticket:typing", typingSchema, (socket, req) => relayTyping(ctx, socket, req.ticketId, req.typing));
  const onRefresh = guard(ctx, "auth:refresh", refreshSchema, (socket, req) => refresh(ctx, socket, req.token));
  const handlers = new Map<unknown, (this: GatewaySocket, ...args: unknown[]) => Promise<void>>([
    ["ticket:subscribe", onSubscribe],
    ["ticket:unsubscribe", onUnsubscribe],
    ["ticket:typing", onTyping],
    ["auth:refresh", onRefresh],
  ]);
  /**
   * Every client event arrives here (one catch-all listener, not one listener per event name on
   * each socket: fewer keys in each socket's listener table). A packet that Socket.IO hands over
   * after the socket disconnected is dropped, as its own dispatch does.
   */
  function onAny(this: GatewaySocket, event: unknown, ...args: unknown[]): void {
    if (!this.connected) return;
    const handler = handlers.get(event);
    if (handler) void handler.apply(this, args);
    else void rejectUnknownEvent(ctx, this, event, args);
  }
  function onDisconnect(this: GatewaySocket, reason: string): void {
    const socket = this;
    // a client that left "/" (a CONNECT-less DISCONNECT packet) and no other namespace: close the
    // session now, so its slot is free and a packet it sends next is not dropped in silence
    if (reason === "client namespace disconnect" && (socket.client as unknown as { sockets: Map<string, unknown> }).sockets.size === 0) socket.conn.close();
    ctx.metrics.connections.dec();
    disarmExpiry(socket);
    ctx.eventLimiter.forget(socket.id);
    ctx.logger.debug({ socketId: socket.id, userId: socket.data.claims.sub, reason }, "disconnected");
    releaseSubscriptions(ctx, socket).catch((error: unknown) =>
      ctx.logger.warn({ err: coerceError(error), socketId: socket.id, userId: socket.data.claims.sub }, "presence cleanup failed"),
    );
  }

  return (socket) => {
    ctx.metrics.connections.inc();
    ctx.metrics.connectionsOpened.inc();
    // the HTTP request (headers, buffers) is not needed after the handshake: let it be collected
    (socket.conn as unknown as { request: unknown }).request = null;
    void socket.join(userRoom(socket.data.claims.sub));
    armExpiry(socket);
    socket.onAny(onAny);
    socket.on("disconnect", onDisconnect);
  };
}
