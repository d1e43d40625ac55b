/**
 * The wire contract shared by the server, the client package and the tests.
 * Types only (and two tiny helpers): importing this module pulls in nothing else.
 */

export type TicketId = string;

export interface TicketUpdate {
  ticketId: TicketId;
  /** 1, 2, 3 … per ticket without gaps; null for best-effort raw NOTIFY messages */
  seq: number | null;
  /** id of the event in realtime.ticket_events; null for raw NOTIFY messages */
  id: string | null;
  type: string;
  data: unknown;
  /** ISO 8601 time the event was written by its committing transaction */
  at: string;
}

export interface Viewer {
  userId: string;
  name: string;
  role: string;
}

export interface AckError {
  code: string;
  message: string;
}
export interface ErrorAck {
  ok: false;
  error: AckError;
}
export type Ack<T extends object = object> = ({ ok: true } & T) | ErrorAck;

export interface SubscribeRequest {
  ticketId: TicketId;
  /** the last seq the client has seen; omitted on a first subscribe */
  sinceSeq?: number;
}
export interface SubscribeResult {
  ticketId: TicketId;
  /** the ticket's latest seq */
  seq: number;
  /** every retained event after sinceSeq, in order */
  missed: TicketUpdate[];
  /** false: events after sinceSeq are no longer retained, reload the ticket */
  recovered: boolean;
  /** the ticket's viewers, this socket's user included */
  viewers: Viewer[];
  /** the `rev` of `viewers`: a later `ticket:presence` with a higher `rev` replaces them, a lower one is stale */
  presenceRev: number;
}

/** `ticket:presence`: the whole viewer list; keep the one with the highest `rev` (lists can arrive out of order). */
export interface PresenceUpdate {
  ticketId: TicketId;
  viewers: Viewer[];
  rev: number;
}

export interface ClientToServerEvents {
  "ticket:subscribe": (req: SubscribeRequest, ack: (res: Ack<SubscribeResult>) => void) => void;
  "ticket:unsubscribe": (req: { ticketId: TicketId }, ack: (res: Ack) => void) => void;
  /** `relayed: false` when nothing went out (a repeated `typing: true`, or `false` while not shown as typing) */
  "ticket:typing": (req: { ticketId: TicketId; typing: boolean }, ack: (res: Ack<{ relayed: boolean }>) => void) => void;
  "auth:refresh": (req: { token: string }, ack: (res: Ack<{ expiresAt: string }>) => void) => void;
}

export interface ServerToClientEvents {
  "ticket:update": (update: TicketUpdate) => void;
  "ticket:presence": (presence: PresenceUpdate) => void;
  "ticket:typing": (typing: { ticketId: TicketId; userId: string; name: string; typing: boolean }) => void;
  "ticket:revoked": (revoked: { ticketId: TicketId; reason: string }) => void;
  /** the token expired without refresh; the server disconnects right after */
  "auth:expired": (info: { expiredAt: string }) => void;
  /** an event the server could not answer through an ack (the client sent none) */
  "gateway:error": (info: { event: string; error: AckError }) => void;
}

export interface InterServerEvents {
  /** remove a user's sockets from a ticket room on every instance */
  "ticket:evict": (ticketId: TicketId, userId: string, reason: string) => void;
}

export interface Claims {
  sub: string;
  name: string;
  role: string;
  /** ticket ids the user may subscribe to, or ["*"] */
  tickets: string[];
  /** seconds since the epoch */
  exp: number;
  iat?: number;
}

export interface SocketData {
  claims: Claims;
  ip: string;
  /** ticket ids this socket is subscribed to */
  tickets: Set<TicketId>;
}

export interface HandshakeErrorData {
  code: string;
  status: number;
  retryAfterMs?: number;
}

/** A ticket id: 1–128 of A-Z a-z 0-9 _ . : @ - (the SQL functions check the same pattern). */
export const TICKET_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
export function isTicketId(value: string): boolean {
  return TICKET_ID_PATTERN.test(value);
}

const TICKET_ROOM_PREFIX = "ticket:";
export function ticketRoom(ticketId: TicketId): string {
  return TICKET_ROOM_PREFIX + ticketId;
}
/** The ticket of a `ticket:` room name, or undefined for any other room. */
export function ticketOfRoom(room: string): TicketId | undefined {
  return room.startsWith(TICKET_ROOM_PREFIX) ? room.slice(TICKET_ROOM_PREFIX.length) : undefined;
}
export function userRoom(userId: string): string {
  return `user:${userId}`;
}
