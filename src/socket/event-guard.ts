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

/** Strikes of rate limiting after which a flooding socket is disconnected. */
const FLOOD_STRIKES = 50;
const strikes = new WeakMap<GatewaySocket, number>();

export function guard<S extends z.ZodType, R extends object>(
  ctx: SocketContext,
  socket: GatewaySocket,
  event: string,
  schema: S,
  handler: (input: z.infer<S>) => Promise<R> | R,
) {
  return async (...args: unknown[]): Promise<void> => {
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as AckFn) : undefined;
    const reply = (response: Ack<object>) => {
      ctx.metrics.clientEvents.inc({ event, result: response.ok ? "ok" : response.error.code });
      if (ack) ack(response);
      else if (!response.ok) socket.emit("gateway:error", { event, error: response.error });
    };
    try {
      const { allowed, retryAfterMs } = await ctx.eventLimiter.consume(socket.id);
      if (!allowed) {
        const count = (strikes.get(socket) ?? 0) + 1;
        strikes.set(socket, count);
        reply(errorAck(ErrorCode.RATE_LIMITED, `too many events, retry in ${retryAfterMs}ms`));
        if (count >= FLOOD_STRIKES) {
          ctx.logger.warn({ socketId: socket.id, ip: socket.data.ip }, "disconnecting a socket that keeps flooding");
          socket.disconnect(true);
        }
        return;
      }
      strikes.delete(socket);
      if (!ack) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, `${event} requires an acknowledgement callback`));
      if (args.length !== 1) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, `${event} takes exactly one payload object`));
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) return reply(errorAck(ErrorCode.INVALID_PAYLOAD, describeIssue(parsed.error)));
      const result = await handler(parsed.data);
      reply({ ok: true, ...result });
    } catch (error) {
      if (error instanceof ClientError) return reply(error.toAck());
      ctx.logger.error({ err: coerceError(error).message, event, socketId: socket.id }, "event handler failed");
      reply(errorAck(ErrorCode.UNAVAILABLE, "the gateway could not complete the request, retry later"));
    }
  };
}
