/** What a refused handshake and a dropped slow consumer are sent, at the transport level. */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { ErrorCode, type HandshakeError } from "../errors.js";
import type { GatewaySocket } from "../socket/context.js";

type EngineSocket = GatewaySocket["conn"];

/**
 * Tell the client where the transport lets us (on a WebSocket, behind what it already buffers:
 * a client that is merely slow still reads it), then close discarding engine.io's write buffer so
 * nothing more is queued. ws keeps what it holds until its close handshake times out (30 s).
 */
export function dropSlowConsumer(conn: EngineSocket, joined: boolean): void {
  const ws = (conn.transport as unknown as { socket?: { send?: (data: string) => void; readyState?: number } }).socket;
  if (joined && ws?.send && ws.readyState === 1) {
    const payload = { event: "ticket:update", error: { code: ErrorCode.SLOW_CONSUMER, message: "your connection could not keep up with its updates; reconnect and resume from your last seq" } };
    ws.send(`42${JSON.stringify(["gateway:error", payload])}`);
  }
  conn.close(true);
}

/** HTTP 429/503 for a handshake request refused outright (no session is created). */
export function respondRefusal(req: IncomingMessage, error: HandshakeError): void {
  const { status, retryAfterMs } = error.data;
  const body = JSON.stringify({ ...error.data, message: error.message });
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(body)),
    "Cache-Control": "no-store",
  };
  if (retryAfterMs !== undefined) headers["Retry-After"] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  const res = (req as IncomingMessage & { res?: ServerResponse }).res;
  if (res) {
    if (!res.headersSent) res.writeHead(status, headers).end(body);
    return;
  }
  // a WebSocket upgrade: answer on the raw socket and half-close it; it closes once the client does
  const socket = req.socket;
  // an upgraded socket has no HTTP server behind it any more: an unhandled error would crash us
  socket.on("error", () => undefined);
  if (!socket.writable) return void socket.destroy();
  const head = Object.entries({ ...headers, Connection: "close" }).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${head}\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), 2000);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}
