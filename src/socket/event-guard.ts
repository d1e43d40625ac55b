/**
 * Wraps every client event handler: ack required, per-socket rate limit, schema validation, metrics,
 * and errors turned into error acks. Malformed input never throws out of here and never disconnects.
 */
import type { z } from "zod";
import { ClientError, ErrorCode, coerceError, errorAck } from "../errors.js";
import type { Ack } from "../protocol.js";
import type { GatewaySocket, SocketContext } from "./context.js";
import { describeIssue } from "./schemas.js";

type AckFn = (response: Ack<object>) => void;

/** Rate-limited events in a row after which a flooding socket is disconnected. */
export const FLOOD_STRIKES = 50;

/**
 * Count one client event against EVENT_RATE_PER_SOCKET. Returns false when it is over the limit,
 * after replying RATE_LIMITED; a socket that keeps sending through FLOOD_STRIKES such replies in
 * a row is told why on `gateway:error` and disconnected.
 */
export async function admitEvent(ctx: SocketContext, socket: GatewaySocket, event: string, reply: (response: Ack<object>) => void): Promise<boolean> {
  const { allowed, retryAfterMs } = await ctx.eventLimiter.consume(socket.id);
  if (allowed) {
    socket.data.floodStrikes = 0;
    return true;
  }
  const count = ++socket.data.floodStrikes;
  reply(errorAck(ErrorCode.RATE_LIMITED, `too many events, retry in ${retryAfterMs}ms`));
  if (count === FLOOD_STRIKES) {
    ctx.logger.warn({ socketId: socket.id, ip: socket.data.ip }, "disconnecting a socket that keeps flooding");
    const error = errorAck(ErrorCode.RATE_LIMITED, `disconnected: kept sending events after ${FLOOD_STRIKES} rate-limit replies`).error;
    // socket.io flushes this packet before it closes the transport
    socket.emit("gateway:error", { event, error });
    socket.disconnect(true);
  }
  return false;
}

/**
 * Answer through the ack, or (no ack) through `gateway:error` so the client still learns of a
 * failure; every answer is counted under `metricEvent` (a fixed name, never client-chosen).
 */
function replier(ctx: SocketContext, socket: GatewaySocket, metricEvent: string, event: string, ack: AckFn | undefined) {
  return (response: Ack<object>) => {
    ctx.metrics.clientEvents.inc({ event: metricEvent, result: response.ok ? "ok" : response.error.code });
    if (ack) ack(response);
    else if (!response.ok) socket.emit("gateway:error", { event, error: response.error });
  };
}

/**
 * One listener for every socket: Socket.IO calls event listeners with the socket as `this`, so the
 * gateway builds each handler once instead of a closure per socket and event.
 */
export function guard<S extends z.ZodType, R extends object>(
  ctx: SocketContext,
  event: string,
  schema: S,
  /** returns the ack's fields, or writes them itself through `respond` (at a moment it chooses) */
  handler: (socket: GatewaySocket, input: z.infer<S>, respond: (result: R) => void) => Promise<R | void> | R | void,
) {
  return async function (this: GatewaySocket, ...args: unknown[]): Promise<void> {
    const socket = this;
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as AckFn) : undefined;
    const reply = replier(ctx, socket, event, event, ack);
    let replied = false;
    const respond = (result: R) => {
      replied = true;
      reply({ ok: true, ...result });
    };
    try {
      if (!(await admitEvent(ctx, socket, event, reply))) return;
      if (!ack) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, `${event} requires an acknowledgement callback`));
      if (args.length !== 1) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, `${event} takes exactly one payload object`));
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, describeIssue(parsed.error)));
      const result = await handler(socket, parsed.data, respond);
      if (!replied) respond(result as R);
    } catch (error) {
      if (replied) {
        ctx.logger.error({ err: coerceError(error), event, socketId: socket.id }, "event handler failed after its ack");
        return;
      }
      if (error instanceof ClientError) return reply(error.toAck());
      ctx.logger.error({ err: coerceError(error), event, socketId: socket.id }, "event handler failed");
      reply(errorAck(ErrorCode.UNAVAILABLE, "the gateway could not complete the request, retry later"));
    }
  };
}

/** An event the gateway does not know: rate-limited like any other, then answered INVALID_PAYLOAD. */
export async function rejectUnknownEvent(ctx: SocketContext, socket: GatewaySocket, event: unknown, args: unknown[]): Promise<void> {
  const name = typeof event === "string" ? event.slice(0, 64) : "(non-string)";
  const ack = typeof args[args.length - 1] === "function" ? (args[args.length - 1] as AckFn) : undefined;
  // the label stays "unknown": a client must not be able to mint label values
  const reply = replier(ctx, socket, "unknown", name, ack);
  try {
    if (!(await admitEvent(ctx, socket, name, reply))) return;
    reply(errorAck(ErrorCode.INVALID_PAYLOAD, `unknown event ${name}`));
  } catch (error) {
    ctx.logger.error({ err: coerceError(error), socketId: socket.id }, "unknown event handling failed");
  }
}
