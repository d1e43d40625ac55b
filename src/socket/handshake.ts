/**
 * The `io.use` middleware. The connection slot was taken when the Engine.IO session opened (see
 * limits/engine-admission.ts); here a session refused there reports its code, a draining instance
 * refuses, and the token is checked. Every rejection carries `err.data = { code, status }`, so the
 * client reads a code instead of retrying a transport error forever. A rejected session gives its
 * slot back at once and is closed once the CONNECT_ERROR is out.
 */
import { newSocketState } from "../io-types.js";
import { InvalidTokenError } from "../auth/jwt.js";
import { HandshakeCode, HandshakeError, coerceError } from "../errors.js";
import type { GatewaySocket, SocketContext } from "./context.js";

const NO_AUTH = Object.freeze({});

function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(value);
  return match?.[1];
}

export function handshakeMiddleware(ctx: SocketContext) {
  return async (socket: GatewaySocket, next: (err?: Error) => void) => {
    const session = ctx.admission.sessionOf(socket.conn);
    if (!session) return next(new Error("engine session not admitted"));
    // already counted and logged when the session was refused at the engine level
    if (session.refusal) return next(session.refusal);
    const ip = session.ip;
    try {
      if (ctx.isDraining()) throw new HandshakeError(HandshakeCode.SHUTTING_DOWN, "this instance is shutting down, reconnect");
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
      // the bearer token is not needed once verified (auth:refresh brings its own): not kept per socket
      if (fromAuth !== undefined) socket.handshake.auth = NO_AUTH;
      ctx.admission.joined(session, socket);
      next();
    } catch (error) {
      if (error instanceof HandshakeError) {
        ctx.metrics.connectionsRejected.inc({ reason: error.data.code });
        ctx.logger.info({ ip, code: error.data.code, reason: error.message }, "connection rejected");
        ctx.admission.refuse(session, error);
        next(error);
      } else {
        ctx.logger.debug({ ip, err: coerceError(error) }, "handshake aborted");
        next(coerceError(error));
      }
    }
  };
}
