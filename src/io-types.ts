/**
 * The typed Socket.IO server and socket every server module shares. Not in protocol.ts: that file
 * is the wire contract the client package compiles in, and must not need socket.io's server types.
 */
import type { Server, Socket } from "socket.io";
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from "./protocol.js";

/** What ticket:typing keeps per socket (src/socket/typing.ts). */
export interface SocketTyping {
  /** ticket → expiry timer and when `true` was last relayed */
  tickets: Map<string, { timer: NodeJS.Timeout; relayedAt: number }>;
  windowStart: number;
  starts: number;
}

/**
 * Everything the server keeps per connection, in one visible record (`socket.data`): the public
 * part (claims, ip, tickets) and the handlers' own state.
 */
export interface SocketState extends SocketData {
  /** disconnects the socket when its token expires (src/socket/session.ts) */
  expiryTimer?: NodeJS.Timeout;
  /** rate-limited events in a row (src/socket/event-guard.ts) */
  floodStrikes: number;
  /** created by the socket's first ticket:typing (most sockets never type) */
  typing?: SocketTyping;
}

export function newSocketState(data: SocketData): SocketState {
  return { claims: data.claims, ip: data.ip, tickets: data.tickets, expiryTimer: undefined, floodStrikes: 0, typing: undefined };
}

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketState>;
export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketState>;
