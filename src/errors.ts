/**
 * The error catalog: every code a client can see, in one place.
 *
 * Handshake rejections reach the client as `connect_error` with `err.data = { code, status }`;
 * event failures as an ack `{ ok: false, error: { code, message } }`.
 */
import type { AckError, ErrorAck, HandshakeErrorData } from "./protocol.js";

export const HandshakeCode = {
  UNAUTHORIZED: "UNAUTHORIZED",
  TOO_MANY_CONNECTIONS: "TOO_MANY_CONNECTIONS",
  RATE_LIMITED: "RATE_LIMITED",
  SERVER_FULL: "SERVER_FULL",
  SHUTTING_DOWN: "SHUTTING_DOWN",
} as const;
export type HandshakeCode = (typeof HandshakeCode)[keyof typeof HandshakeCode];

export const HANDSHAKE_STATUS: Record<HandshakeCode, number> = {
  UNAUTHORIZED: 401,
  TOO_MANY_CONNECTIONS: 429,
  RATE_LIMITED: 429,
  SERVER_FULL: 503,
  SHUTTING_DOWN: 503,
};

export const ErrorCode = {
  INVALID_PAYLOAD: "INVALID_PAYLOAD",
  FORBIDDEN: "FORBIDDEN",
  NOT_SUBSCRIBED: "NOT_SUBSCRIBED",
  TOO_MANY_SUBSCRIPTIONS: "TOO_MANY_SUBSCRIPTIONS",
  RATE_LIMITED: "RATE_LIMITED",
  UNAVAILABLE: "UNAVAILABLE",
  UNAUTHORIZED: "UNAUTHORIZED",
  /** on `gateway:error` only: the socket's unsent output passed MAX_BUFFERED_BYTES_PER_SOCKET */
  SLOW_CONSUMER: "SLOW_CONSUMER",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A rejected handshake; socket.io passes `data` to the client's `connect_error`. */
export class HandshakeError extends Error {
  readonly data: HandshakeErrorData;
  constructor(code: HandshakeCode, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "HandshakeError";
    this.data = { code, status: HANDSHAKE_STATUS[code], ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  }
}

/** A failed client event; handlers throw it and the event guard turns it into an error ack. */
export class ClientError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ClientError";
  }
  toAck(): ErrorAck {
    return errorAck(this.code, this.message);
  }
}

export function errorAck(code: ErrorCode, message: string): ErrorAck {
  const error: AckError = { code, message };
  return { ok: false, error };
}

/**
 * A start-up failure whose message already says what is wrong and how to fix it (a directory,
 * a missing OS user): logged as that one line, without a stack trace.
 */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/** Errors arrive as anything (strings, pg errors, AggregateError); normalise once. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value));
}
