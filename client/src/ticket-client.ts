/**
 * `createTicketClient(options)`: one Socket.IO connection to the gateway that makes the gateway's
 * guarantees hold in the app. Subscriptions resume from their last seq on every reconnect,
 * duplicates drop, out-of-order events wait for the gap to fill, the token is refreshed before it
 * expires, and handshake rejections the stock client gives up on are retried with jittered backoff.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import type { ClientToServerEvents, HandshakeErrorData, ServerToClientEvents } from "./protocol.js";
import { Backoff } from "./backoff.js";
import { ClientErrorCode, TicketClientError } from "./errors.js";
import { TicketSubscription, type SubscriptionHandlers, type SubscriptionLink } from "./subscription.js";
import { TokenKeeper } from "./token-keeper.js";

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface TicketClientOptions {
  /** the gateway's origin, e.g. "https://rt.example.com" (path /socket.io is appended) */
  url: string;
  /** a fixed token; enough for short sessions */
  token?: string;
  /** called for the first token, before the current one expires, and after UNAUTHORIZED */
  getToken?: () => string | Promise<string>;
  /** refresh this long before `exp`. @default 60000 */
  refreshMarginMs?: number;
  /** how long out-of-order events wait for the missing ones before the client asks again. @default 1000 */
  gapTimeoutMs?: number;
  /** @default 10000 */
  ackTimeoutMs?: number;
  /** reconnect delays, jittered. @default 500 / 10000 */
  reconnectMinDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** consecutive UNAUTHORIZED handshakes, each with a fresh token, before giving up. @default 3 */
  maxAuthFailures?: number;
  /** @default true; false waits for `connect()` */
  autoConnect?: boolean;
  /** passed to socket.io-client (transports, path, extraHeaders, ...) */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "refused" | "closed";

export interface ConnectionStatus {
  state: ConnectionState;
  /** why the client is not connected: a server code or a ClientErrorCode */
  code?: string;
  message?: string;
  /** when the next attempt is due (only for retries the client schedules itself) */
  retryInMs?: number;
}

export interface ClientEvents {
  status: (status: ConnectionStatus) => void;
  /** every failure, including those a subscription's onError also hears */
  error: (error: TicketClientError) => void;
  tokenRefreshed: (info: { expiresAt: string }) => void;
}

export interface TicketClient {
  /** Subscribe to a ticket; returns the unsubscribe function. Several subscribers may share a ticket. */
  subscribe(ticketId: string, handlers: SubscriptionHandlers, options?: { sinceSeq?: number }): () => void;
  /** Tell the other viewers whether this user is typing; resolves false when it could not be sent. */
  typing(ticketId: string, typing: boolean): Promise<boolean>;
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  connect(): void;
  close(): void;
  readonly status: ConnectionStatus;
  /** the last seq delivered for a ticket */
  lastSeq(ticketId: string): number | undefined;
  /** the underlying socket, for diagnostics */
  readonly socket: ClientSocket;
}

/** Handshake rejections worth retrying as they are; UNAUTHORIZED is retried only with a new token. */
const RETRYABLE = new Set(["SHUTTING_DOWN", "SERVER_FULL", "RATE_LIMITED", "TOO_MANY_CONNECTIONS"]);

export function createTicketClient(options: TicketClientOptions): TicketClient {
  if (typeof options?.url !== "string" || options.url === "") throw new TypeError("createTicketClient: `url` is required");
  if (options.token === undefined && typeof options.getToken !== "function") {
    throw new TypeError("createTicketClient: pass `token` or a `getToken` function");
  }
  const ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
  const minDelay = options.reconnectMinDelayMs ?? 500;
  const maxDelay = options.reconnectMaxDelayMs ?? 10_000;
  const maxAuthFailures = options.maxAuthFailures ?? 3;
  const subscriptions = new Map<string, TicketSubscription>();
  const listeners: { [E in keyof ClientEvents]: Set<ClientEvents[E]> } = { status: new Set(), error: new Set(), tokenRefreshed: new Set() };
  const backoff = new Backoff({ minDelayMs: minDelay, maxDelayMs: maxDelay });
  let status: ConnectionStatus = { state: "connecting" };
  let closed = false;
  let authFailures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const tokens = new TokenKeeper({
    token: options.token,
    getToken: options.getToken,
    refreshMarginMs: options.refreshMarginMs ?? 60_000,
    refresh: async (token) => {
      const ack = await socket.timeout(ackTimeoutMs).emitWithAck("auth:refresh", { token });
      if (!ack.ok) throw new TicketClientError(ack.error.code, ack.error.message);
      notify("tokenRefreshed", { expiresAt: ack.expiresAt });
    },
    canRefresh: () => socket.connected,
    onError: (error) => reportError(error),
  });

  const socket: ClientSocket = io(options.url, {
    autoConnect: false,
    reconnectionDelay: minDelay,
    reconnectionDelayMax: maxDelay,
    randomizationFactor: 0.5,
    ...options.socketOptions,
    // called before every connection attempt, so a reconnect always carries a current token
    auth: (cb) => {
      tokens.current().then(
        (token) => cb({ token }),
        (error: unknown) => {
          reportError(TicketClientError.from(error, ClientErrorCode.TOKEN_UNAVAILABLE));
          cb({});
        },
      );
    },
  });

  function notify<E extends keyof ClientEvents>(event: E, ...args: Parameters<ClientEvents[E]>): void {
    for (const listener of [...listeners[event]]) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (error) {
        if (event !== "error") reportError(TicketClientError.from(error, ClientErrorCode.HANDLER_FAILED));
      }
    }
  }

  function reportError(error: TicketClientError): void {
    notify("error", error);
  }

  function setStatus(next: ConnectionStatus): void {
    status = next;
    notify("status", next);
  }

  /** Reconnect ourselves: the stock client does not retry a rejected handshake or a server kick. */
  function retryLater(code: string, message: string, retryAfterMs?: number): void {
    if (closed) return;
    const delay = backoff.next(retryAfterMs);
    setStatus({ state: "reconnecting", code, message, retryInMs: delay });
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!closed && !socket.connected) socket.connect();
    }, delay);
  }

  function refuse(error: TicketClientError): void {
    setStatus({ state: "refused", code: error.code, message: error.message });
    for (const subscription of subscriptions.values()) subscription.fail(error);
  }

  socket.on("connect", () => {
    backoff.reset();
    authFailures = 0;
    setStatus({ state: "connected" });
    tokens.connected();
    for (const subscription of subscriptions.values()) subscription.sync();
  });

  socket.on("disconnect", (reason) => {
    tokens.disconnected();
    for (const subscription of subscriptions.values()) subscription.detach();
    if (closed || reason === "io client disconnect") return;
    if (socket.active) {
      // transport closed (network, drain): socket.io's manager reconnects with its own jitter
      setStatus({ state: "reconnecting", code: ClientErrorCode.CONNECTION_FAILED, message: `connection lost (${reason})` });
    } else if (tokens.expired && !tokens.renewable) {
      refuse(new TicketClientError(ClientErrorCode.TOKEN_EXPIRED, "the token expired and no getToken was given to replace it"));
    } else {
      retryLater(reason, `the gateway closed the connection (${reason})`);
    }
  });

  socket.on("connect_error", (raw) => {
    if (closed) return;
    if (socket.active) {
      // the gateway is unreachable; the manager retries by itself
      const error = new TicketClientError(ClientErrorCode.CONNECTION_FAILED, `cannot reach the gateway: ${raw.message}`, { cause: raw });
      reportError(error);
      setStatus({ state: "reconnecting", code: error.code, message: error.message });
      return;
    }
    const data = (raw as Error & { data?: Partial<HandshakeErrorData> }).data;
    const code = typeof data?.code === "string" ? data.code : "CONNECT_ERROR";
    const error = new TicketClientError(code, raw.message, { status: data?.status, retryAfterMs: data?.retryAfterMs, cause: raw });
    reportError(error);
    if (code === "UNAUTHORIZED") {
      authFailures += 1;
      if (!tokens.renewable || authFailures > maxAuthFailures) {
        refuse(error);
        return;
      }
      tokens.invalidate();
    }
    retryLater(code, raw.message, RETRYABLE.has(code) ? data?.retryAfterMs : undefined);
  });

  socket.on("ticket:update", (update) => subscriptions.get(update.ticketId)?.receive(update));
  socket.on("ticket:presence", ({ ticketId, viewers, rev }) => subscriptions.get(ticketId)?.presence(viewers, rev));
  socket.on("ticket:typing", (signal) => subscriptions.get(signal.ticketId)?.typing(signal));
  socket.on("ticket:revoked", ({ ticketId, reason }) => subscriptions.get(ticketId)?.revoked(reason));
  socket.on("auth:expired", () => tokens.markExpired());
  socket.on("gateway:error", ({ event, error }) => reportError(new TicketClientError(error.code, `${event}: ${error.message}`)));

  const link: SubscriptionLink = {
    connected: () => socket.connected,
    subscribe: (ticketId, sinceSeq) =>
      socket.timeout(ackTimeoutMs).emitWithAck("ticket:subscribe", sinceSeq === undefined ? { ticketId } : { ticketId, sinceSeq }),
    reportError,
    forget: (ticketId) => subscriptions.delete(ticketId),
  };

  const client: TicketClient = {
    subscribe(ticketId, handlers, subscribeOptions = {}) {
      if (typeof ticketId !== "string" || ticketId === "") throw new TypeError("subscribe: ticketId must be a non-empty string");
      if (typeof handlers !== "object" || handlers === null) throw new TypeError("subscribe: handlers must be an object");
      if (closed) throw new TicketClientError("CLOSED", "the client is closed");
      let subscription = subscriptions.get(ticketId);
      const fresh = subscription === undefined;
      if (!subscription) {
        subscription = new TicketSubscription(ticketId, link, {
          gapTimeoutMs: options.gapTimeoutMs ?? 1000,
          sinceSeq: subscribeOptions.sinceSeq,
          retryMinDelayMs: minDelay,
          retryMaxDelayMs: maxDelay,
        });
        subscriptions.set(ticketId, subscription);
      }
      const own = { ...handlers };
      subscription.listeners.add(own);
      if (fresh) subscription.sync();
      else subscription.greet(own);
      const mine = subscription;
      return () => {
        if (!mine.listeners.delete(own) || mine.listeners.size > 0) return;
        mine.stop();
        if (subscriptions.get(ticketId) === mine) subscriptions.delete(ticketId);
        if (socket.connected) socket.emit("ticket:unsubscribe", { ticketId }, () => undefined);
      };
    },
    async typing(ticketId, typing) {
      if (!socket.connected || !subscriptions.get(ticketId)?.active) return false;
      try {
        const ack = await socket.timeout(ackTimeoutMs).emitWithAck("ticket:typing", { ticketId, typing: Boolean(typing) });
        if (ack.ok) return true;
        const error = new TicketClientError(ack.error.code, ack.error.message, { ticketId });
        subscriptions.get(ticketId)?.fail(error);
        reportError(error);
      } catch (error) {
        reportError(TicketClientError.from(error, ClientErrorCode.TIMEOUT, ticketId));
      }
      return false;
    },
    on(event, listener) {
      if (typeof listener !== "function") throw new TypeError(`on("${event}"): listener must be a function`);
      const set = listeners[event] as Set<typeof listener> | undefined;
      if (!set) throw new TypeError(`on: unknown event "${String(event)}" (status, error, tokenRefreshed)`);
      set.add(listener);
      return () => void set.delete(listener);
    },
    connect() {
      if (closed) throw new TicketClientError("CLOSED", "the client is closed");
      if (!socket.connected && !socket.active) socket.connect();
    },
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      tokens.close();
      for (const subscription of subscriptions.values()) subscription.stop();
      subscriptions.clear();
      socket.disconnect();
      setStatus({ state: "closed" });
      for (const set of Object.values(listeners)) set.clear();
    },
    get status() {
      return status;
    },
    lastSeq: (ticketId) => subscriptions.get(ticketId)?.sequencer.lastSeq,
    socket,
  };
  if (options.autoConnect !== false) socket.connect();
  return client;
}
