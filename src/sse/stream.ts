/**
 * One open SSE stream: its tickets, its cursor, its timers, and its way out.
 *
 * Each ticket goes through the same delivery steps as a Socket.IO subscription: `retain`, join the
 * room's local subscribers, `attach(sinceSeq)`, and `complete`, whose callback writes the missed
 * events (or a `ticket:reset`) in the same synchronous step that turns live delivery on. Every
 * message carries the whole stream's cursor as its `id:`.
 */
import type { ServerResponse } from "node:http";
import type { Delivery } from "../delivery/index.js";
import type { Claims, TicketUpdate } from "../protocol.js";
import { formatCursor, type Cursor } from "./cursor.js";

const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * A burst (a replay, a batch of large events) fills the buffer of a healthy reader too, within one
 * tick; a slow consumer is one whose buffer is still over the bound this long after.
 */
export const SLOW_CONSUMER_GRACE_MS = 1000;

export type CloseReason = "client" | "draining" | "slow consumer" | "token expired" | "revoked" | "unavailable" | "server stop";

export interface SseStreamOptions {
  id: string;
  res: ServerResponse;
  claims: Claims;
  delivery: Delivery;
  heartbeatMs: number;
  /** unsent bytes beyond this, for SLOW_CONSUMER_GRACE_MS, close the stream (the client resumes from its cursor) */
  maxBufferedBytes: number;
  /** the `retry:` the client waits before reconnecting, jittered per stream */
  retryMs: number;
  onClose(reason: CloseReason): void;
}

export class SseStream {
  readonly id: string;
  readonly claims: Claims;
  /** each held ticket's last delivered seq: the cursor */
  private readonly positions: Cursor = new Map();
  /** tickets this stream holds in the delivery pipeline (retained) */
  private readonly held = new Set<string>();
  private closed = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private slowCheck: NodeJS.Timeout | undefined;

  constructor(private readonly options: SseStreamOptions) {
    this.id = options.id;
    this.claims = options.claims;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  holds(ticketId: string): boolean {
    return this.held.has(ticketId);
  }

  /** Headers are written: set the reconnect delay, start the heartbeat and the token's expiry. */
  open(): void {
    this.write(`retry: ${this.options.retryMs}\n: connected\n\n`);
    this.heartbeat = setInterval(() => this.write(": heartbeat\n\n"), this.options.heartbeatMs);
    this.armExpiry();
  }

  /**
   * Attach every ticket (in parallel), resuming those of `cursor` after their seq, then send
   * `ready` with the positions. Rejects when a ticket cannot be brought level (the caller closes
   * the stream; the client reconnects with the cursor it has).
   */
  async attachAll(tickets: string[], cursor: Cursor): Promise<void> {
    await Promise.all(tickets.map((ticketId) => this.attach(ticketId, cursor.get(ticketId))));
    if (this.closed) return;
    const positions = Object.fromEntries(this.positions);
    this.send("ready", { tickets: positions });
  }

  private async attach(ticketId: string, sinceSeq: number | undefined): Promise<void> {
    if (this.closed) return;
    const { delivery } = this.options;
    this.held.add(ticketId);
    delivery.retain(ticketId);
    delivery.subscribers.add(ticketId, { id: this.id, deliver: (update) => this.update(update) });
    // left out of live delivery until the callback below has written the history
    const attachment = delivery.attach(ticketId, this.id, sinceSeq);
    try {
      await attachment.complete((result) => {
        if (this.closed || !this.held.has(ticketId)) throw new Error(`the stream let go of ticket ${ticketId} while attaching`);
        if (!result.recovered) {
          this.positions.set(ticketId, result.seq);
          this.send("ticket:reset", { ticketId, seq: result.seq, reason: "the events after your cursor are no longer retained: reload the ticket" });
          return;
        }
        for (const update of result.missed) this.update(update);
        this.positions.set(ticketId, result.seq);
      });
    } catch (error) {
      attachment.cancel();
      if (this.closed || !this.held.has(ticketId)) return; // closed or revoked meanwhile: nothing to report
      throw error;
    }
  }

  /** A live (or missed) update of a held ticket. */
  update(update: TicketUpdate): void {
    if (this.closed || !this.held.has(update.ticketId)) return;
    // raw NOTIFY messages (seq null) are best-effort and leave the cursor as it is
    if (update.seq !== null) this.positions.set(update.ticketId, update.seq);
    this.send("ticket:update", update);
  }

  /** Stop delivering one ticket (eviction, lost access); the stream ends with its last ticket. */
  revoke(ticketId: string, reason: string): void {
    if (this.closed || !this.held.has(ticketId)) return;
    this.let(ticketId);
    this.positions.delete(ticketId);
    this.send("ticket:revoked", { ticketId, reason });
    if (this.held.size === 0) this.close("revoked");
  }

  /** End the stream (idempotent); the client's EventSource reconnects unless it is told not to. */
  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.expiry);
    clearTimeout(this.slowCheck);
    for (const ticketId of [...this.held]) this.let(ticketId);
    const { res } = this.options;
    if (reason === "slow consumer" || reason === "client") res.destroy();
    else res.end();
    this.options.onClose(reason);
  }

  private let(ticketId: string): void {
    if (!this.held.delete(ticketId)) return;
    this.options.delivery.subscribers.remove(ticketId, this.id);
    this.options.delivery.release(ticketId);
  }

  private armExpiry(): void {
    const expMs = this.claims.exp * 1000;
    const fire = () => {
      const left = expMs - Date.now();
      if (left > 0) {
        this.expiry = setTimeout(fire, Math.min(left, MAX_TIMER_MS));
        return;
      }
      for (const ticketId of [...this.held]) {
        this.positions.delete(ticketId);
        this.send("ticket:revoked", { ticketId, reason: "token expired" });
      }
      this.close("token expired");
    };
    this.expiry = setTimeout(fire, Math.min(Math.max(0, expMs - Date.now()), MAX_TIMER_MS));
  }

  private send(event: string, data: unknown): void {
    // JSON.stringify escapes CR and LF inside strings, so one data: line always holds the payload
    this.write(`id: ${formatCursor(this.positions)}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(chunk: string): void {
    if (this.closed) return;
    const { res, maxBufferedBytes } = this.options;
    if (res.destroyed) return this.close("client");
    res.write(chunk);
    if (res.writableLength > maxBufferedBytes && this.slowCheck === undefined) {
      this.slowCheck = setTimeout(() => {
        this.slowCheck = undefined;
        if (res.writableLength > maxBufferedBytes) this.close("slow consumer");
      }, SLOW_CONSUMER_GRACE_MS);
    }
  }
}
