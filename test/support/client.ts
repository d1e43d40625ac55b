/** socket.io-client helpers: typed sockets that connect, ack and wait without fixed sleeps. */
import { io, type Socket } from "socket.io-client";
import { mintToken } from "../../src/auth/jwt.js";
import type { Ack, ClientToServerEvents, ServerToClientEvents } from "../../src/protocol.js";
import { onCleanup } from "./cleanup.js";
import { TEST_JWT_SECRET } from "./env.js";

export type TestSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface TokenOptions {
  sub?: string;
  name?: string;
  role?: string;
  tickets?: string[];
  ttlSeconds?: number;
  secret?: string;
  issuer?: string;
  audience?: string;
}

export function token(options: TokenOptions = {}): Promise<string> {
  return mintToken(options.secret ?? TEST_JWT_SECRET, {
    sub: options.sub ?? "alice",
    name: options.name,
    role: options.role,
    tickets: options.tickets ?? ["*"],
    ttlSeconds: options.ttlSeconds ?? 3600,
    issuer: options.issuer,
    audience: options.audience,
  });
}

export interface ConnectOptions {
  token?: string | null;
  auth?: Record<string, unknown>;
  extraHeaders?: Record<string, string>;
  reconnection?: boolean;
  transports?: string[];
}

/** An unconnected socket (autoConnect off), disconnected after the test. */
export function createSocket(url: string, options: ConnectOptions = {}): TestSocket {
  const socket: TestSocket = io(url, {
    autoConnect: false,
    reconnection: options.reconnection ?? false,
    transports: options.transports ?? ["websocket"],
    auth: options.auth ?? (options.token === null ? {} : { token: options.token }),
    extraHeaders: options.extraHeaders,
    forceNew: true,
  });
  onCleanup("socket", () => socket.disconnect());
  return socket;
}

/** Connect with a valid token for `sub` (default alice, all tickets) and resolve once connected. */
export async function connect(url: string, options: ConnectOptions & TokenOptions = {}): Promise<TestSocket> {
  const jwt = options.token === undefined ? await token(options) : options.token;
  const socket = createSocket(url, { ...options, token: jwt });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (error) => reject(Object.assign(new Error(`connect_error: ${error.message}`), { data: (error as { data?: unknown }).data })));
    socket.connect();
  });
  return socket;
}

/** Resolve with the `connect_error` a handshake produces (and fail if it connects). */
export function connectError(url: string, options: ConnectOptions = {}): Promise<Error & { data?: { code: string; status: number; retryAfterMs?: number } }> {
  const socket = createSocket(url, options);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => reject(new Error("connected, but a connect_error was expected")));
    socket.once("connect_error", (error) => resolve(error as never));
    socket.connect();
  });
}

type EventName = keyof ClientToServerEvents;
type Payload<E extends EventName> = Parameters<ClientToServerEvents[E]>[0];
type AckOf<E extends EventName> = Parameters<Parameters<ClientToServerEvents[E]>[1]>[0];

/** Emit with an ack and a timeout. */
export function request<E extends EventName>(socket: TestSocket, event: E, payload: Payload<E>, timeoutMs = 5000): Promise<AckOf<E>> {
  return (socket.timeout(timeoutMs) as unknown as { emitWithAck(e: string, p: unknown): Promise<AckOf<E>> }).emitWithAck(event, payload);
}

/** Emit anything at all (hostile-input tests) and resolve with the ack. */
export function rawRequest(socket: TestSocket, event: string, args: unknown[], timeoutMs = 5000): Promise<Ack<object>> {
  return (socket.timeout(timeoutMs) as unknown as { emitWithAck(e: string, ...a: unknown[]): Promise<Ack<object>> }).emitWithAck(event, ...args);
}

/** Collect every occurrence of a server event. */
export function collect<E extends keyof ServerToClientEvents>(socket: TestSocket, event: E): Array<Parameters<ServerToClientEvents[E]>[0]> {
  const seen: Array<Parameters<ServerToClientEvents[E]>[0]> = [];
  socket.on(event as never, ((payload: never) => seen.push(payload)) as never);
  return seen;
}

/** Poll `condition` until it holds or `timeoutMs` passes (then fail with `what`). */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Wait for the next occurrence of `event` matching `predicate`. */
export function nextEvent<E extends keyof ServerToClientEvents>(
  socket: TestSocket,
  event: E,
  predicate: (payload: Parameters<ServerToClientEvents[E]>[0]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<Parameters<ServerToClientEvents[E]>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event as never, handler as never);
      reject(new Error(`no ${String(event)} within ${timeoutMs}ms`));
    }, timeoutMs);
    function handler(payload: Parameters<ServerToClientEvents[E]>[0]) {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      socket.off(event as never, handler as never);
      resolve(payload);
    }
    socket.on(event as never, handler as never);
  });
}

/** Resolves after `ms`; use only to prove that something does NOT happen. */
export const quietPeriod = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
