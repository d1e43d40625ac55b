/**
 * Raw Engine.IO clients (no socket.io-client): WebSocket sessions through `ws` and long-polling
 * through plain HTTP, for what a hostile or unusual client does: never send CONNECT, send garbage,
 * stop reading.
 */
import WebSocket from "ws";
import { onCleanup } from "./cleanup.js";

export const ENGINE_PATH = "/socket.io/?EIO=4";

export type RawOutcome =
  | { kind: "refused"; status: number; body: string; headers: Record<string, string | string[] | undefined> }
  | { kind: "open"; ws: RawWebSocket };

export interface RawWebSocket {
  socket: WebSocket;
  /** every text message received, in order (the first is the engine's open packet) */
  messages: string[];
  closed: Promise<number>;
  isOpen(): boolean;
  send(data: string | Buffer): void;
}

/** Open a raw Engine.IO WebSocket; resolves once the open packet arrived, or with the HTTP refusal. */
export function rawWebSocket(baseUrl: string, options: { headers?: Record<string, string> } = {}): Promise<RawOutcome> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, "ws")}${ENGINE_PATH}&transport=websocket`, { headers: options.headers, perMessageDeflate: false });
  onCleanup("raw websocket", () => socket.terminate());
  const messages: string[] = [];
  let open = false;
  const closed = new Promise<number>((resolve) => socket.once("close", (code) => {
    open = false;
    resolve(code);
  }));
  return new Promise((resolve, reject) => {
    socket.on("error", (error) => {
      if (!open) reject(error);
    });
    socket.once("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        resolve({ kind: "refused", status: res.statusCode ?? 0, body, headers: res.headers });
        socket.terminate();
      });
    });
    socket.on("message", (data, isBinary) => {
      messages.push(isBinary ? `<binary ${(data as Buffer).length}>` : data.toString());
      if (messages.length === 1) {
        open = true;
        resolve({
          kind: "open",
          ws: { socket, messages, closed, isOpen: () => open, send: (frame) => socket.send(frame) },
        });
      }
    });
  });
}

export interface PollingHandshake {
  status: number;
  body: string;
  retryAfter: string | null;
  /** the session id when the handshake opened a session */
  sid?: string;
}

/** One long-polling handshake GET (a new session, or its HTTP refusal). */
export async function pollingHandshake(baseUrl: string, headers: Record<string, string> = {}): Promise<PollingHandshake> {
  const response = await fetch(`${baseUrl}${ENGINE_PATH}&transport=polling`, { headers });
  const body = await response.text();
  const result: PollingHandshake = { status: response.status, body, retryAfter: response.headers.get("retry-after") };
  if (response.status === 200 && body.startsWith("0")) result.sid = (JSON.parse(body.slice(1)) as { sid: string }).sid;
  return result;
}

/** One poll of an existing session: its packets (split on the record separator), or the HTTP error. */
export async function poll(baseUrl: string, sid: string, timeoutMs = 5000): Promise<{ status: number; packets: string[] } | "timeout"> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(`${baseUrl}${ENGINE_PATH}&transport=polling&sid=${encodeURIComponent(sid)}`, { signal: controller.signal });
    const body = await response.text();
    return { status: response.status, packets: response.status === 200 ? body.split("\x1e") : [body] };
  } catch (error) {
    if ((error as Error).name === "AbortError") return "timeout";
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** POST packets to a polling session. */
export async function post(baseUrl: string, sid: string, body: string | Buffer, contentType = "text/plain;charset=UTF-8"): Promise<number> {
  const response = await fetch(`${baseUrl}${ENGINE_PATH}&transport=polling&sid=${encodeURIComponent(sid)}`, { method: "POST", body: typeof body === "string" ? body : new Uint8Array(body), headers: { "content-type": contentType } });
  await response.text();
  return response.status;
}

/** The socket.io CONNECT_ERROR data in a list of engine packets, if any. */
export function connectErrorIn(packets: string[]): { code: string; status: number; retryAfterMs?: number } | undefined {
  for (const packet of packets) {
    if (!packet.startsWith("44")) continue;
    const parsed = JSON.parse(packet.slice(2)) as { data?: { code: string; status: number; retryAfterMs?: number } };
    if (parsed.data) return parsed.data;
  }
  return undefined;
}
