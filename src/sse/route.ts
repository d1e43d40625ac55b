/**
 * `GET /sse?tickets=1,2`: admission, then the stream. Every refusal happens before the first byte
 * of the stream, as an HTTP status with a JSON `{ code, message }` body: 400 INVALID_PAYLOAD,
 * 401 UNAUTHORIZED, 403 FORBIDDEN, 429 TOO_MANY_CONNECTIONS / RATE_LIMITED, 503 SERVER_FULL /
 * SHUTTING_DOWN / UNAVAILABLE. The checks are those of the Socket.IO handshake and subscribe, in
 * the same order, with the same limiter and verifier.
 *
 * The token may come in the query string (`access_token`, because a browser's EventSource cannot
 * send headers): nothing here logs the URL, the query or the headers.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidTokenError, mayAccess } from "../auth/jwt.js";
import { ClientError, ErrorCode, HandshakeCode, HandshakeError, coerceError } from "../errors.js";
import type { TokenVerifier } from "../auth/jwt.js";
import type { GatewayConfig } from "../config.js";
import type { Delivery } from "../delivery/index.js";
import type { ConnectionLimiter, Lease } from "../limits/types.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { Claims } from "../protocol.js";
import { clientIp } from "../socket/client-ip.js";
import { CURSOR_ENTRY_OVERHEAD, CursorError, MAX_CURSOR_LENGTH, parseCursor, validTicketId, type Cursor } from "./cursor.js";
import { SseStream } from "./stream.js";

/** The reconnect delay sent as `retry:`: uniform in [MIN, MIN + JITTER) ms, so a drained fleet does not return at once. */
const RETRY_MIN_MS = 1000;
const RETRY_JITTER_MS = 4000;

/**
 * What the SSE route needs from the gateway, wired in gateway.ts: the same verifier, limiter,
 * eviction rule and pipeline as Socket.IO. The connection limiter is used in this file only.
 */
export interface SseDeps {
  config: GatewayConfig;
  logger: Logger;
  metrics: Metrics;
  verifier: TokenVerifier;
  delivery: Delivery;
  /** the per-IP cap and connection rate, shared with the Socket.IO handshake */
  connectionLimiter: ConnectionLimiter;
  /** the key per-IP limits count a client under (default: the IP itself) */
  limitKey?(ip: string): string;
  /** Socket.IO connections of this instance: they share MAX_CONNECTIONS with the streams */
  otherConnections(): number;
  /** the re-subscription rule after realtime.evict (src/socket/eviction-rule.ts); throws a ClientError */
  assertNotEvicted(claims: Claims, ticketId: string): Promise<void>;
  isDraining(): boolean;
}

export interface SseRegistry {
  /** open streams plus admissions in progress (the per-instance cap counts both) */
  count(): number;
  reserve(): () => void;
  add(stream: SseStream): void;
  remove(stream: SseStream): void;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

function bearer(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

interface SseRequest {
  tickets: string[];
  cursor: Cursor;
  token: string | undefined;
}

/** Read the query and headers strictly; a bad request loses nothing and says what is wrong. */
function parseRequest(req: IncomingMessage, maxTickets: number): SseRequest {
  const query = new URL(req.url ?? "/", "http://localhost").searchParams;
  const bad = (message: string) => new Refusal(400, ErrorCode.INVALID_PAYLOAD, message);
  const ticketsParams = query.getAll("tickets");
  if (ticketsParams.length !== 1 || ticketsParams[0] === "") throw bad("give the tickets once, comma-separated: /sse?tickets=1,2");
  const tickets = [...new Set(ticketsParams[0]!.split(","))];
  if (!tickets.every(validTicketId)) throw bad("ticket ids may hold only letters, digits and _ . : @ - (at most 128 characters)");
  if (maxTickets > 0 && tickets.length > maxTickets) throw bad(`a stream may hold at most ${maxTickets} tickets`);
  // the cursor this stream will write must fit what a reconnect may send back
  if (tickets.reduce((sum, id) => sum + id.length + CURSOR_ENTRY_OVERHEAD, 0) > MAX_CURSOR_LENGTH) {
    throw bad(`the tickets' cursor would exceed ${MAX_CURSOR_LENGTH} characters: open fewer tickets per stream`);
  }
  const tokens = query.getAll("access_token");
  if (tokens.length > 1) throw bad("give access_token once");
  const header = req.headers.authorization;
  const token = bearer(header) ?? tokens[0];
  // EventSource sends Last-Event-ID on reconnect; `last_event_id` serves clients that cannot set it
  const lastEventId = req.headers["last-event-id"] ?? query.get("last_event_id") ?? "";
  let cursor: Cursor;
  try {
    cursor = parseCursor(Array.isArray(lastEventId) ? lastEventId.join(",") : lastEventId.trim(), Math.max(maxTickets, tickets.length));
  } catch (error) {
    if (error instanceof CursorError) throw bad(error.message);
    throw error;
  }
  return { tickets, cursor, token };
}

/** CORS_ORIGINS applies to /sse as to Socket.IO: a cross-origin EventSource needs the header on every answer. */
function corsHeaders(req: IncomingMessage, allowed: string[]): Record<string, string> {
  const origin = req.headers.origin;
  if (!origin || !(allowed.includes("*") || allowed.includes(origin))) return {};
  return { "access-control-allow-origin": origin, "access-control-allow-credentials": "true", vary: "Origin" };
}

function refuse(res: ServerResponse, refusal: Refusal, cors: Record<string, string>): void {
  const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...cors };
  if (refusal.retryAfterMs !== undefined) headers["retry-after"] = String(Math.ceil(refusal.retryAfterMs / 1000));
  if (refusal.status === 401) headers["www-authenticate"] = 'Bearer realm="realtime-gateway"';
  res.writeHead(refusal.status, headers);
  res.end(JSON.stringify({ code: refusal.code, message: refusal.message }));
}

function asRefusal(error: unknown): Refusal | undefined {
  if (error instanceof Refusal) return error;
  if (error instanceof HandshakeError) return new Refusal(error.data.status, error.data.code, error.message, error.data.retryAfterMs);
  if (error instanceof ClientError) return new Refusal(error.code === ErrorCode.FORBIDDEN ? 403 : 503, error.code, error.message);
  return undefined;
}

export function sseHandler(ctx: SseDeps, registry: SseRegistry) {
  const log = ctx.logger.child({ component: "sse" });

  async function admit(req: IncomingMessage, ip: string): Promise<{ request: SseRequest; claims: Claims; lease: Lease }> {
    const request = parseRequest(req, ctx.config.maxSubscriptionsPerSocket);
    if (ctx.isDraining()) throw new HandshakeError(HandshakeCode.SHUTTING_DOWN, "this instance is shutting down, reconnect");
    const max = ctx.config.maxConnections;
    // Socket.IO connections and SSE streams share MAX_CONNECTIONS (this admission is reserved already: - 1)
    if (max > 0 && registry.count() - 1 + ctx.otherConnections() >= max) {
      throw new HandshakeError(HandshakeCode.SERVER_FULL, `this instance holds ${max} connections`);
    }
    const lease = await ctx.connectionLimiter.admit(ctx.limitKey ? ctx.limitKey(ip) : ip);
    try {
      const claims = await ctx.verifier.verify(request.token).catch((error: unknown) => {
        const reason = error instanceof InvalidTokenError ? error.message : "token could not be verified";
        if (!(error instanceof InvalidTokenError)) log.warn({ err: coerceError(error) }, "token verification failed");
        throw new HandshakeError(HandshakeCode.UNAUTHORIZED, reason);
      });
      for (const ticketId of request.tickets) {
        if (!mayAccess(claims, ticketId)) throw new ClientError(ErrorCode.FORBIDDEN, `your token does not grant ticket ${ticketId}`);
      }
      await Promise.all(request.tickets.map((ticketId) => ctx.assertNotEvicted(claims, ticketId)));
      // a drain that began while this admission waited: send the client elsewhere now
      if (ctx.isDraining()) throw new HandshakeError(HandshakeCode.SHUTTING_DOWN, "this instance is shutting down, reconnect");
      return { request, claims, lease };
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cors = corsHeaders(req, ctx.config.corsOrigins);
    const ip = clientIp(req.socket.remoteAddress, req.headers, ctx.config.trustProxy);
    const unreserve = registry.reserve();
    let admitted: Awaited<ReturnType<typeof admit>>;
    try {
      admitted = await admit(req, ip);
    } catch (error) {
      unreserve();
      const refusal = asRefusal(error);
      if (!refusal) {
        log.error({ err: coerceError(error) }, "sse admission failed");
        return refuse(res, new Refusal(503, ErrorCode.UNAVAILABLE, "the stream cannot be opened right now, retry later"), cors);
      }
      ctx.metrics.connectionsRejected.inc({ reason: refusal.code });
      log.info({ ip, code: refusal.code, reason: refusal.message }, "sse stream refused");
      return refuse(res, refusal, cors);
    }
    const { request, claims, lease } = admitted;
    if (res.destroyed || req.socket.destroyed) {
      unreserve();
      lease.release();
      return;
    }
    const headers: Record<string, string> = {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      ...cors,
    };
    // a connection-specific header is forbidden in HTTP/2
    if (req.httpVersionMajor === 1) headers.connection = "keep-alive";
    res.writeHead(200, headers);
    if (req.method === "HEAD") {
      unreserve();
      lease.release();
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    const stream = new SseStream({
      id: `sse:${randomUUID()}`,
      res,
      claims,
      delivery: ctx.delivery,
      heartbeatMs: ctx.config.sseHeartbeatIntervalMs,
      // the same slow-consumer bound as sockets (0: off)
      maxBufferedBytes: ctx.config.maxBufferedBytesPerSocket || Number.POSITIVE_INFINITY,
      retryMs: RETRY_MIN_MS + Math.floor(Math.random() * RETRY_JITTER_MS),
      onClose: (reason) => {
        registry.remove(stream);
        unreserve();
        lease.release();
        ctx.metrics.sseStreams.dec();
        log.debug({ streamId: stream.id, userId: claims.sub, reason }, "sse stream closed");
      },
    });
    registry.add(stream);
    ctx.metrics.sseStreams.inc();
    ctx.metrics.sseStreamsOpened.inc();
    res.on("close", () => stream.close("client"));
    stream.open();
    try {
      await stream.attachAll(request.tickets, request.cursor);
    } catch (error) {
      log.warn({ err: coerceError(error), streamId: stream.id }, "sse stream could not attach its tickets; closing it (the client resumes)");
      stream.close("unavailable");
    }
  }

  return (req: IncomingMessage, res: ServerResponse): Promise<void> =>
    handle(req, res).catch((error: unknown) => {
      log.error({ err: coerceError(error) }, "sse request failed");
      if (!res.headersSent) refuse(res, new Refusal(503, ErrorCode.UNAVAILABLE, "the stream cannot be opened right now, retry later"), {});
      else res.destroy();
    });
}
