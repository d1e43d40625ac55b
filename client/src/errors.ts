/**
 * The one error type the client reports. `code` is a server code (UNAUTHORIZED, FORBIDDEN,
 * SHUTTING_DOWN, ... see SPEC.md) or one of the client's own below.
 */
export const ClientErrorCode = {
  /** the gateway could not be reached (transport error); the client keeps retrying */
  CONNECTION_FAILED: "CONNECTION_FAILED",
  /** a request got no answer within `ackTimeoutMs` */
  TIMEOUT: "TIMEOUT",
  /** the token expired and there is no `getToken` to replace it */
  TOKEN_EXPIRED: "TOKEN_EXPIRED",
  /** `getToken` threw or returned something that is not a non-empty string */
  TOKEN_UNAVAILABLE: "TOKEN_UNAVAILABLE",
  /** an app handler threw; delivery to the other handlers went on */
  HANDLER_FAILED: "HANDLER_FAILED",
} as const;

export class TicketClientError extends Error {
  readonly code: string;
  /** the handshake's HTTP-like status, when the gateway sent one */
  readonly status?: number;
  readonly ticketId?: string;
  readonly retryAfterMs?: number;

  constructor(code: string, message: string, details: { status?: number; ticketId?: string; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "TicketClientError";
    this.code = code;
    if (details.status !== undefined) this.status = details.status;
    if (details.ticketId !== undefined) this.ticketId = details.ticketId;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }

  static from(error: unknown, code: string, ticketId?: string): TicketClientError {
    if (error instanceof TicketClientError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new TicketClientError(code, message, { ticketId, cause: error });
  }
}
