/**
 * The typed Socket.IO server and socket every server module shares. Not in protocol.ts: that file
 * is the wire contract the client package compiles in, and must not need socket.io's server types.
 */
import type { Server, Socket } from "socket.io";
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from "./protocol.js";

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
