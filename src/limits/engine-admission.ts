/**
 * Engine-level admission: every Engine.IO session counts against MAX_CONNECTIONS_PER_IP,
 * CONNECTION_RATE_PER_IP and MAX_CONNECTIONS from the moment its transport opens (the WebSocket
 * upgrade or the first long-polling GET), whether or not it ever sends the Socket.IO CONNECT.
 *
 * The decision runs in engine.io's `allowRequest`, which sees the handshake request of both
 * transports (and only those: upgrades and polls of an existing session carry its `sid`).
 *
 * - Admitted: the session holds a slot (per IP across the cluster, and one of this instance's
 *   MAX_CONNECTIONS) until its engine socket closes: the slot is released exactly once, there.
 *   A session that has not joined the namespace after HANDSHAKE_TIMEOUT_MS is closed by Socket.IO
 *   (`connectTimeout`), which frees the slot.
 * - Refused, within a small per-IP budget of refusals in flight: the session opens only to be told
 *   why. It gets a Socket.IO CONNECT_ERROR with `data = { code, status, retryAfterMs? }` at once
 *   (what a socket.io-client reads as `connect_error` with `err.data`, so it does not retry a
 *   transport error forever) and is closed as soon as that is written, at the latest after
 *   REFUSAL_LINGER_MS. It holds no slot.
 * - Refused beyond that budget (a flood): no session at all; the handshake request gets HTTP 429
 *   or 503 with `Retry-After` where known and a JSON body `{ code, status, message, retryAfterMs? }`.
 */
import type { IncomingMessage } from "node:http";
import { HandshakeCode, HandshakeError, coerceError } from "../errors.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { clientIp, limitKey } from "../socket/client-ip.js";
import type { GatewaySocket } from "../socket/context.js";
import type { ConnectionLimiter, Lease } from "./types.js";
import { dropSlowConsumer, respondRefusal } from "./engine-responses.js";
import { stopWatching, watchOutput } from "./slow-consumer.js";

export type EngineSocket = GatewaySocket["conn"];

/** Refused sessions one IP (key) may have open on one instance before refusals become plain HTTP. */
export const REFUSALS_PER_IP = 32;
/** ... and on the whole instance. */
export const REFUSALS_TOTAL = 1024;
/** A refused session is closed once told; this bounds a long-polling one that never polls again. */
export const REFUSAL_LINGER_MS = 2000;

/** One record per Engine.IO session on this instance. */
export interface EngineSession {
  /** the client's address (socket.data.ip) */
  readonly ip: string;
  /** what per-IP limits count it under (IPv6: its /IPV6_PREFIX_LENGTH network) */
  readonly key: string;
  /** set when the session holds no slot and must only be told why and closed */
  refusal?: HandshakeError;
  /** the namespace socket once joined (see `joined`), for telling a slow consumer why it is dropped */
  readonly socket?: GatewaySocket;
}

interface SessionRecord extends EngineSession {
  socket?: GatewaySocket;
  joinedOther?: boolean;
  lease?: Lease;
  refusing: boolean;
  conn?: EngineSocket;
  timer?: NodeJS.Timeout;
}

export interface EngineAdmissionOptions {
  config: GatewayConfig;
  limiter: ConnectionLimiter;
  metrics: Metrics;
  logger: Logger;
  isDraining(): boolean;
  /** other connections of this instance that count against MAX_CONNECTIONS (SSE streams) */
  otherHeld?(): number;
  /** further checks of the handshake request (CORS origin); a string refuses it with 403 */
  precheck?(req: IncomingMessage): string | undefined;
}

/** A session's slot: the per-IP lease and one of this instance's MAX_CONNECTIONS, released once. */
class HeldLease implements Lease {
  private released = false;
  constructor(
    private readonly slot: Lease,
    private readonly onRelease: () => void,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.slot.release();
    this.onRelease();
  }
}

export class EngineAdmission {
  /** sessions holding a slot of this instance, including handshakes still in flight */
  private held = 0;
  private refusingTotal = 0;
  private readonly refusingByKey = new Map<string, number>();
  /** admitted handshake requests whose engine socket does not exist yet */
  private readonly pending = new Map<IncomingMessage, { record: SessionRecord; forget(): void; abandon(): void }>();
  private readonly sessions = new Map<EngineSocket, SessionRecord>();
  private readonly logger: Logger;

  constructor(private readonly options: EngineAdmissionOptions) {
    this.logger = options.logger.child({ scope: "admission" });
    const sessions = this.sessions;
    const release = (record: SessionRecord) => this.release(record);
    this.sessionClosed = function (this: EngineSocket) {
      stopWatching(this);
      const record = sessions.get(this);
      if (!record) return;
      sessions.delete(this);
      clearTimeout(record.timer);
      release(record);
    };
  }

  /** the engine.io `allowRequest` option */
  readonly allowRequest = (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
    const denied = this.options.precheck?.(req);
    if (denied !== undefined) return callback(denied, false);
    const ip = clientIp(req.socket.remoteAddress, req.headers, this.options.config.trustProxy);
    const key = limitKey(ip, this.options.config.ipv6PrefixLength);
    this.decide(key).then(
      ({ lease, refusal }) => {
        const record: SessionRecord = { ip, key, lease, refusing: false };
        if (refusal) {
          this.options.metrics.connectionsRejected.inc({ reason: refusal.data.code });
          if (!this.mayRefuseInBand(key)) {
            // a flood: one debug line each (the metric counts them), and no engine.io error path,
            // whose immediate destroy of an upgrade socket could cut our response short
            this.logger.debug({ ip, code: refusal.data.code }, "connection rejected over HTTP");
            respondRefusal(req, refusal);
            return;
          }
          this.logger.info({ ip, code: refusal.data.code, reason: refusal.message }, "connection rejected");
          record.refusal = refusal;
          this.startRefusing(record);
        }
        if (req.socket.destroyed) {
          this.release(record);
          return callback("client went away", false);
        }
        this.track(req, record);
        callback(null, true);
      },
      (error: unknown) => {
        this.logger.error({ err: coerceError(error), ip }, "admission failed");
        callback("admission failed", false);
      },
    );
  };

  /** engine.io's `connection_error`: a handshake that failed after `allowRequest` admitted it */
  readonly onConnectionError = ({ req }: { req: IncomingMessage }): void => {
    this.pending.get(req)?.abandon();
  };

  /** engine.io's `connection`: the session exists; its record follows it until it closes */
  readonly onConnection = (conn: EngineSocket): void => {
    const entry = this.pending.get(conn.request);
    if (!entry) {
      // cannot happen while allowRequest is installed; close rather than serve an uncounted session
      this.logger.error({ sid: sidOf(conn) }, "engine session without admission; closing it");
      conn.close();
      return;
    }
    entry.forget();
    const record = entry.record;
    record.conn = conn;
    this.sessions.set(conn, record);
    // `on`, not `once` (engine.io emits close once): no wrapper per session
    conn.on("close", this.sessionClosed);
    if (record.refusal) {
      this.tell(record, conn, record.refusal);
      return;
    }
    // HANDSHAKE_TIMEOUT_MS: discard, so an idle long-polling session frees its slot now, not after
    // engine.io's 30 s close timeout (Socket.IO's own connectTimeout, a little later, is the backup)
    record.timer = setTimeout(() => {
      if (!record.socket && !record.joinedOther) conn.close(true);
    }, this.options.config.handshakeTimeoutMs);
    watchOutput(conn, this.options.config.maxBufferedBytesPerSocket, record, this.overflowed);
  };

  /** one close listener for every session (engine.io calls it with the session as `this`) */
  private readonly sessionClosed: (this: EngineSocket) => void;

  /** a held lease gives its instance slot back through this (one function, not one per lease) */
  private readonly releaseHeld = (): void => this.setHeld(this.held - 1);

  /** one slow-consumer callback for every session (see watchOutput) */
  private readonly overflowed = (record: SessionRecord, buffered: number): void => this.dropSlowConsumer(record, buffered);

  /** the record of an engine session (for the namespace handshake) */
  sessionOf(conn: EngineSocket): EngineSession | undefined {
    return this.sessions.get(conn);
  }

  /**
   * The namespace handshake refused an admitted session (bad token, draining): free its slot now,
   * so the client's next attempt finds it, and close the session once the CONNECT_ERROR is out.
   */
  refuse(session: EngineSession, error: HandshakeError): void {
    const record = session as SessionRecord;
    if (record.refusal) return;
    record.refusal = error;
    record.lease?.release();
    record.lease = undefined;
    this.startRefusing(record);
    const conn = record.conn;
    // the CONNECT_ERROR is written on the next tick (socket.io's namespace `_add`); close after it
    if (conn) setImmediate(() => this.closeSoon(record, conn));
  }

  /** The namespace handshake accepted the session: it is no longer on the handshake clock. */
  joined(session: EngineSession, socket: GatewaySocket): void {
    const record = session as SessionRecord;
    record.socket = socket;
    clearTimeout(record.timer);
    record.timer = undefined;
  }

  /** The session joined another namespace (the admin UI): off the handshake clock as well. */
  joinedOther(conn: EngineSocket): void {
    const record = this.sessions.get(conn);
    if (!record || record.refusal) return;
    clearTimeout(record.timer);
    record.timer = undefined;
    record.joinedOther = true;
  }

  /** sessions holding a slot here (tests and the gauge) */
  get heldCount(): number {
    return this.held;
  }

  private async decide(key: string): Promise<{ lease?: Lease; refusal?: HandshakeError }> {
    if (this.options.isDraining()) {
      return { refusal: new HandshakeError(HandshakeCode.SHUTTING_DOWN, "this instance is shutting down, reconnect") };
    }
    const max = this.options.config.maxConnections;
    if (max > 0 && this.held + (this.options.otherHeld?.() ?? 0) >= max) {
      return { refusal: new HandshakeError(HandshakeCode.SERVER_FULL, `this instance holds ${max} connections`) };
    }
    // counted before the (possibly remote) per-IP check, so concurrent handshakes cannot overshoot
    this.setHeld(this.held + 1);
    let slot: Lease;
    try {
      slot = await this.options.limiter.admit(key);
    } catch (error) {
      this.setHeld(this.held - 1);
      if (error instanceof HandshakeError) return { refusal: error };
      throw error;
    }
    return { lease: new HeldLease(slot, this.releaseHeld) };
  }

  /** Hold the admitted request until its engine socket exists; a handshake that dies first gives its slot back. */
  private track(req: IncomingMessage, record: SessionRecord): void {
    const forget = () => {
      this.pending.delete(req);
      req.socket.off("close", abandon);
    };
    const abandon = () => {
      if (!this.pending.has(req)) return;
      forget();
      this.release(record);
    };
    this.pending.set(req, { record, forget, abandon });
    req.socket.once("close", abandon);
  }

  private release(record: SessionRecord): void {
    record.lease?.release();
    record.lease = undefined;
    if (record.refusing) {
      record.refusing = false;
      this.refusingTotal -= 1;
      this.options.metrics.engineRefusals.set(this.refusingTotal);
      const left = (this.refusingByKey.get(record.key) ?? 1) - 1;
      if (left > 0) this.refusingByKey.set(record.key, left);
      else this.refusingByKey.delete(record.key);
    }
  }

  private mayRefuseInBand(key: string): boolean {
    return this.refusingTotal < REFUSALS_TOTAL && (this.refusingByKey.get(key) ?? 0) < REFUSALS_PER_IP;
  }

  private startRefusing(record: SessionRecord): void {
    if (record.refusing) return;
    record.refusing = true;
    this.refusingTotal += 1;
    this.options.metrics.engineRefusals.set(this.refusingTotal);
    this.refusingByKey.set(record.key, (this.refusingByKey.get(record.key) ?? 0) + 1);
  }

  /** Push the CONNECT_ERROR for "/" without waiting for the client's CONNECT, then close. */
  private tell(record: SessionRecord, conn: EngineSocket, error: HandshakeError): void {
    conn.write(`4${JSON.stringify({ message: error.message, data: error.data })}`);
    this.closeSoon(record, conn);
  }

  /**
   * Close once what is queued (the CONNECT_ERROR) has gone out. Always a discarding close: a
   * graceful one on long-polling waits up to 30 s for a poll that a refused client may never make.
   */
  private closeSoon(record: SessionRecord, conn: EngineSocket): void {
    if (conn.readyState === "closed") return;
    const close = () => conn.close(true);
    clearTimeout(record.timer);
    if ((conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length === 0) return close();
    conn.once("drain", close);
    record.timer = setTimeout(close, REFUSAL_LINGER_MS);
  }

  private dropSlowConsumer(record: SessionRecord, buffered: number): void {
    const conn = record.conn;
    if (!conn) return;
    this.options.metrics.slowConsumerDisconnects.inc();
    this.logger.warn({ ip: record.ip, sid: sidOf(conn), socketId: record.socket?.id, buffered, limit: this.options.config.maxBufferedBytesPerSocket }, "slow consumer disconnected");
    dropSlowConsumer(conn, record.socket !== undefined);
  }

  private setHeld(n: number): void {
    this.held = n;
    this.options.metrics.engineSessions.set(n);
  }
}

function sidOf(conn: EngineSocket): string {
  return (conn as unknown as { id: string }).id;
}
