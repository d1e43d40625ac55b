/**
 * One light bench client: a raw WebSocket speaking Engine.IO v4 / Socket.IO v5 (no socket.io-client:
 * at 10,000 connections its timers and buffers would make the generator the bottleneck).
 * It connects with `auth: { token }`, subscribes with acks, answers pings, and on an unexpected
 * close reconnects to the next URL and resumes every ticket with `sinceSeq`.
 */
import WebSocket from "ws";
import { SeqStream } from "./accounting.js";
import { decodeEio, encodeConnect, encodeEvent, PONG, SioType, type SioPacket } from "./eio-codec.js";

export interface ClientSpec {
  token?: string;
  tickets: string[];
  /** which of the URLs to connect to first */
  urlIndex: number;
}

export interface ClientHooks {
  urls: string[];
  /** a `ticket:update` (or a missed event from a resume ack) arrived */
  onUpdate(client: LightClient, ticketId: string, seq: number | null, nonce: number, at: number): void;
  /** the connection ended without us asking */
  onUnexpectedClose(client: LightClient): void;
  /** after an unexpected close: connected again and every ticket resubscribed */
  onResumed(client: LightClient, at: number): void;
  connectTimeoutMs: number;
}

interface Update {
  ticketId: string;
  seq: number | null;
  data?: { b?: number };
}

export class ConnectError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function wsUrl(base: string): string {
  const url = new URL(base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = "/socket.io/";
  url.search = "?EIO=4&transport=websocket";
  return url.toString();
}

export class LightClient {
  readonly streams = new Map<string, SeqStream>();
  ws: WebSocket | undefined;
  connected = false;
  closing = false;
  urlIndex: number;
  disconnectedAt = 0;
  resumedAt = 0;
  private nextAck = 0;
  private acks = new Map<number, (args: unknown[]) => void>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempts = 0;

  constructor(readonly spec: ClientSpec, private readonly hooks: ClientHooks) {
    this.urlIndex = spec.urlIndex;
  }

  /** resolves once the Socket.IO connect is acknowledged; rejects with a ConnectError */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          ws.removeAllListeners("close");
          ws.on("close", () => undefined);
          ws.terminate();
          reject(error);
        } else resolve();
      };
      const timer = setTimeout(() => settle(new ConnectError("TIMEOUT", "connect timed out")), this.hooks.connectTimeoutMs);
      const ws = new WebSocket(wsUrl(this.hooks.urls[this.urlIndex % this.hooks.urls.length]!), { perMessageDeflate: false });
      this.ws = ws;
      ws.on("error", (error) => settle(new ConnectError("WS_ERROR", error.message)));
      ws.on("message", (raw) => {
        const text = raw.toString();
        let packet;
        try {
          packet = decodeEio(text);
        } catch {
          return;
        }
        switch (packet.kind) {
          case "open":
            ws.send(encodeConnect(this.spec.token ? { token: this.spec.token } : {}));
            return;
          case "ping":
            ws.send(PONG);
            return;
          case "close":
            ws.close();
            return;
          case "message":
            this.onPacket(packet.packet, settle);
            return;
          default:
            return;
        }
      });
      ws.on("close", () => {
        if (!settled) return settle(new ConnectError("CLOSED", "closed during the handshake"));
        this.onClose();
      });
    });
  }

  private onPacket(packet: SioPacket, settle: (error?: Error) => void): void {
    if (packet.type === SioType.EVENT && Array.isArray(packet.data)) {
      const [name, payload] = packet.data as [string, Update];
      if (name === "ticket:update") this.deliver(payload, Date.now());
    } else if (packet.type === SioType.ACK && packet.id !== undefined) {
      const callback = this.acks.get(packet.id);
      this.acks.delete(packet.id);
      callback?.((packet.data as unknown[]) ?? []);
    } else if (packet.type === SioType.CONNECT) {
      this.connected = true;
      settle();
    } else if (packet.type === SioType.CONNECT_ERROR) {
      const data = packet.data as { message?: string; data?: { code?: string } } | undefined;
      settle(new ConnectError(data?.data?.code ?? "CONNECT_ERROR", data?.message ?? "connect_error"));
    } else if (packet.type === SioType.DISCONNECT) {
      this.ws?.close();
    }
  }

  private deliver(update: Update, at: number): void {
    if (!update || typeof update.ticketId !== "string") return;
    const stream = this.streams.get(update.ticketId);
    if (stream && typeof update.seq === "number") stream.record(update.seq);
    this.hooks.onUpdate(this, update.ticketId, update.seq, typeof update.data?.b === "number" ? update.data.b : -1, at);
  }

  emit(name: string, payload: unknown, timeoutMs = 30_000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
      const id = this.nextAck++;
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`${name}: no ack within ${timeoutMs}ms`));
      }, timeoutMs);
      this.acks.set(id, (args) => {
        clearTimeout(timer);
        resolve(args[0]);
      });
      this.ws.send(encodeEvent(name, [payload], id));
    });
  }

  /** subscribe every ticket of the spec; on a resume from `sinceSeq` the ack's missed events count as deliveries */
  async subscribeAll(): Promise<void> {
    for (const ticketId of this.spec.tickets) {
      const existing = this.streams.get(ticketId);
      const request = existing ? { ticketId, sinceSeq: existing.contiguous } : { ticketId };
      const ack = (await this.emit("ticket:subscribe", request)) as
        | { ok: true; seq: number; missed?: Update[] }
        | { ok: false; error: { code: string; message: string } };
      if (!ack || !ack.ok) throw new ConnectError(ack?.error?.code ?? "SUBSCRIBE", ack?.error?.message ?? "subscribe refused");
      if (!existing) this.streams.set(ticketId, new SeqStream(ack.seq ?? 0));
      const at = Date.now();
      for (const missed of ack.missed ?? []) this.deliver(missed, at);
    }
  }

  private onClose(): void {
    this.connected = false;
    for (const callback of this.acks.values()) callback([{ ok: false, error: { code: "CLOSED", message: "closed" } }]);
    this.acks.clear();
    if (this.closing) return;
    this.disconnectedAt = Date.now();
    this.resumedAt = 0;
    this.hooks.onUnexpectedClose(this);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.urlIndex += 1;
    this.attempts += 1;
    // full jitter, as the package's client does: a killed instance's clients must not return in one wave
    const delay = Math.random() * Math.min(5000, 500 * 2 ** Math.min(this.attempts - 1, 4));
    this.reconnectTimer = setTimeout(() => {
      this.connect()
        .then(() => this.subscribeAll())
        .then(
          () => {
            this.attempts = 0;
            this.resumedAt = Date.now();
            this.hooks.onResumed(this, this.resumedAt);
          },
          () => {
            if (this.closing) return;
            if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.terminate();
            else this.scheduleReconnect();
          },
        );
    }, delay);
  }

  close(): void {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}
