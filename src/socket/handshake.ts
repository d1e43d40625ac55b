/**
 * The `io.use` middleware: every rejection happens here, with `err.data = { code, status }`, so the
 * client reads a code instead of retrying a transport error forever.
 */
import { newSocketState } from "../io-types.js";
import { InvalidTokenError } from "../auth/jwt.js";
import { HandshakeCode, HandshakeError, coerceError } from "../errors.js";
import type { Lease } from "../limits/types.js";
import { clientIp } from "./client-ip.js";
import type { GatewaySocket, SocketContext } from "./context.js";

const leases = new WeakMap<object, Lease>();

/** The connection slot a socket holds; released exactly once however the socket ends. */
export function leaseOf(socket: GatewaySocket): Lease | undefined {
  return leases.get(socket);
}

function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(value);
  return match?.[1];
}

export function handshakeMiddleware(ctx: SocketContext) {
  // admitted and handshaking sockets; counted synchronously so concurrent handshakes cannot overshoot
  let local = 0;
  return async (socket: GatewaySocket, next: (err?: Error) => void) => {
    const ip = clientIp(socket.handshake.address, socket.handshake.headers, ctx.config.trustProxy);
    let lease: Lease | undefined;
    let counted = false;
    try {
      if (ctx.isDraining()) throw new HandshakeError(HandshakeCode.SHUTTING_DOWN, "this instance is shutting down, reconnect");
      const max = ctx.config.maxConnections;
      if (max > 0 && local + (ctx.sseStreams?.() ?? 0) >= max) {
        throw new HandshakeError(HandshakeCode.SERVER_FULL, `this instance holds ${max} connections`);
      }
      local += 1;
      counted = true;
      lease = await ctx.connectionLimiter.admit(ip);
      const auth: unknown = socket.handshake.auth;
      const fromAuth = typeof auth === "object" && auth !== null ? (auth as { token?: unknown }).token : undefined;
      const token = fromAuth ?? bearer(socket.handshake.headers.authorization);
      const claims = await ctx.verifier.verify(token).catch((error: unknown) => {
        const reason = error instanceof InvalidTokenError ? error.message : "token could not be verified";
        if (!(error instanceof InvalidTokenError)) ctx.logger.warn({ err: coerceError(error) }, "token verification failed");
        throw new HandshakeError(HandshakeCode.UNAUTHORIZED, reason);
      });
      if (socket.conn.readyState !== "open") throw new Error("client went away during the handshake");
      socket.data = newSocketState({ claims, ip, tickets: new Set() });
      const held = lease;
      leases.set(socket, held);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        held.release();
        local -= 1;
      };
      // "disconnect" covers a namespace-only disconnect; the conn's "close" a socket that died
      // before it was ever connected
      socket.once("disconnect", release);
      socket.conn.once("close", release);
      next();
    } catch (error) {
      lease?.release();
      if (counted) local -= 1;
      if (error instanceof HandshakeError) {
        ctx.metrics.connectionsRejected.inc({ reason: error.data.code });
        ctx.logger.info({ ip, code: error.data.code, reason: error.message }, "connection rejected");
        next(error);
      } else {
        ctx.logger.debug({ ip, err: coerceError(error) }, "handshake aborted");
        next(coerceError(error));
      }
    }
  };
}
