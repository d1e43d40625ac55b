/** Wires one accepted socket: its event handlers, its expiry, and its cleanup. */
import { coerceError } from "../errors.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { guard, rejectUnknownEvent } from "./event-guard.js";
import { refreshSchema, subscribeSchema, typingSchema, unsubscribeSchema } from "./schemas.js";
import { armExpiry, disarmExpiry, refresh } from "./session.js";
import { releaseSubscriptions, subscribe, unsubscribe } from "./subscriptions.js";
import { relayTyping } from "./typing.js";
import { userRoom } from "../protocol.js";

const KNOWN_EVENTS = new Set(["ticket:subscribe", "ticket:unsubscribe", "ticket:typing", "auth:refresh"]);

export function onConnection(ctx: SocketContext, socket: GatewaySocket): void {
  const log = ctx.logger.child({ socketId: socket.id, userId: socket.data.claims.sub });
  ctx.metrics.connections.inc();
  ctx.metrics.connectionsOpened.inc();
  // the HTTP request (headers, buffers) is not needed after the handshake: let it be collected
  (socket.conn as unknown as { request: unknown }).request = null;
  void socket.join(userRoom(socket.data.claims.sub));
  armExpiry(socket);

  socket.on("ticket:subscribe", guard(ctx, socket, "ticket:subscribe", subscribeSchema, (req, respond) => subscribe(ctx, socket, req.ticketId, req.sinceSeq, respond)));
  socket.on("ticket:unsubscribe", guard(ctx, socket, "ticket:unsubscribe", unsubscribeSchema, (req) => unsubscribe(ctx, socket, req.ticketId)));
  socket.on("ticket:typing", guard(ctx, socket, "ticket:typing", typingSchema, (req) => relayTyping(ctx, socket, req.ticketId, req.typing)));
  socket.on("auth:refresh", guard(ctx, socket, "auth:refresh", refreshSchema, (req) => refresh(ctx, socket, req.token)));
  socket.onAny((event: unknown, ...args: unknown[]) => {
    if (typeof event === "string" && KNOWN_EVENTS.has(event)) return;
    void rejectUnknownEvent(ctx, socket, event, args);
  });

  socket.on("disconnect", (reason) => {
    ctx.metrics.connections.dec();
    disarmExpiry(socket);
    ctx.eventLimiter.forget(socket.id);
    log.debug({ reason }, "disconnected");
    releaseSubscriptions(ctx, socket).catch((error: unknown) =>
      log.warn({ err: coerceError(error) }, "presence cleanup failed"),
    );
  });
}
