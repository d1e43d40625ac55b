/**
 * One ticket subscription on the client: (re)subscribes from its last seq, repairs gaps, and
 * fans events out to the app's handlers. The connection is behind `SubscriptionLink`, so this
 * file knows nothing about reconnects or tokens.
 */
import type { Ack, SubscribeResult, TicketUpdate, Viewer } from "./protocol.js";
import { Backoff } from "./backoff.js";
import { TicketClientError } from "./errors.js";
import { Sequencer } from "./sequencer.js";

export interface TypingSignal {
  ticketId: string;
  userId: string;
  name: string;
  typing: boolean;
}

export interface SubscribedInfo {
  ticketId: string;
  /** the ticket's latest seq when the subscription (re)started */
  seq: number;
  /** false on a first subscribe, true when it resumed after a reconnect or a gap */
  resumed: boolean;
  /** how many missed events the server replayed */
  replayed: number;
}

/** What the app passes to `subscribe`; every handler is optional. */
export interface SubscriptionHandlers {
  /** every committed change, once, in seq order (raw best-effort messages have `seq: null`) */
  onUpdate?(update: TicketUpdate): void;
  /** the missed events are no longer retained: reload the ticket; updates after `seq` follow */
  onReset?(info: { ticketId: string; seq: number }): void;
  /** the server acknowledged the subscription (first time and after every resume) */
  onSubscribed?(info: SubscribedInfo): void;
  onPresence?(viewers: Viewer[], ticketId: string): void;
  onTyping?(signal: TypingSignal): void;
  /** the server removed this client from the ticket; it will not resubscribe */
  onRevoked?(info: { ticketId: string; reason: string }): void;
  onError?(error: TicketClientError): void;
}

export interface SubscriptionLink {
  connected(): boolean;
  subscribe(ticketId: string, sinceSeq: number | undefined): Promise<Ack<SubscribeResult>>;
  /** a handler threw, or something failed that no handler of this ticket covers */
  reportError(error: TicketClientError): void;
  /** the subscription ended for good (revoked, forbidden) */
  forget(ticketId: string): void;
}

export interface SubscriptionOptions {
  gapTimeoutMs: number;
  sinceSeq?: number;
  retryMinDelayMs: number;
  retryMaxDelayMs: number;
}

/** Ack errors that retrying cannot fix. */
const TERMINAL = new Set(["FORBIDDEN", "TOO_MANY_SUBSCRIPTIONS", "INVALID_PAYLOAD"]);

export class TicketSubscription {
  readonly listeners = new Set<SubscriptionHandlers>();
  readonly sequencer: Sequencer;
  viewers: Viewer[] = [];
  private presenceRev = -1;
  /** acknowledged on the current connection */
  active = false;
  private stopped = false;
  private everSubscribed = false;
  /** bumps on every request and every disconnect, so a stale ack is ignored */
  private generation = 0;
  private inflight = false;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly backoff: Backoff;

  constructor(
    readonly ticketId: string,
    private readonly link: SubscriptionLink,
    private readonly options: SubscriptionOptions,
  ) {
    this.sequencer = new Sequencer(options.sinceSeq);
    this.backoff = new Backoff({ minDelayMs: options.retryMinDelayMs, maxDelayMs: options.retryMaxDelayMs });
  }

  /** Subscribe from the last seq: on connect, when a gap persists, and on retry. */
  sync(): void {
    if (this.stopped || this.inflight || !this.link.connected()) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const generation = ++this.generation;
    const sinceSeq = this.sequencer.lastSeq;
    this.inflight = true;
    this.link.subscribe(this.ticketId, sinceSeq).then(
      (ack) => {
        if (generation !== this.generation) return;
        this.inflight = false;
        if (ack.ok) this.onAck(ack, sinceSeq);
        else this.onRefused(new TicketClientError(ack.error.code, ack.error.message, { ticketId: this.ticketId }));
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        this.inflight = false;
        this.onRefused(TicketClientError.from(error, "TIMEOUT", this.ticketId));
      },
    );
  }

  /** The connection dropped: whatever was in flight is void; `sync` runs again on connect. */
  detach(): void {
    this.generation += 1;
    this.inflight = false;
    this.active = false;
    this.clearTimers();
  }

  /** The app unsubscribed or the server revoked: no more requests, no more handler calls. */
  stop(): void {
    this.stopped = true;
    this.detach();
  }

  receive(update: TicketUpdate): void {
    if (this.stopped) return;
    this.deliver(this.sequencer.push(update));
    this.watchGap();
  }

  /** Viewer lists can arrive out of order across instances: keep the one with the highest `rev`. */
  presence(viewers: Viewer[], rev?: number): void {
    if (rev !== undefined) {
      if (rev < this.presenceRev) return;
      this.presenceRev = rev;
    }
    this.viewers = viewers;
    this.emit("onPresence", viewers, this.ticketId);
  }

  typing(signal: TypingSignal): void {
    this.emit("onTyping", signal);
  }

  revoked(reason: string): void {
    this.emit("onRevoked", { ticketId: this.ticketId, reason });
    this.stop();
    this.link.forget(this.ticketId);
  }

  /** A handler added to a live subscription hears the current state at once. */
  greet(handlers: SubscriptionHandlers): void {
    if (!this.active) return;
    const seq = this.sequencer.lastSeq ?? 0;
    this.call(handlers, "onSubscribed", { ticketId: this.ticketId, seq, resumed: false, replayed: 0 });
    this.call(handlers, "onPresence", this.viewers, this.ticketId);
  }

  fail(error: TicketClientError): void {
    this.emit("onError", error);
  }

  private onAck(ack: SubscribeResult, sinceSeq: number | undefined): void {
    this.backoff.reset();
    this.active = true;
    const resumed = this.everSubscribed;
    this.everSubscribed = true;
    const outcome = this.sequencer.applySnapshot(ack, sinceSeq);
    if (outcome.reset) this.emit("onReset", { ticketId: this.ticketId, seq: ack.seq });
    this.emit("onSubscribed", { ticketId: this.ticketId, seq: ack.seq, resumed, replayed: ack.missed.length });
    this.deliver(outcome.deliver);
    this.presence(ack.viewers, ack.presenceRev);
    this.watchGap();
  }

  private onRefused(error: TicketClientError): void {
    this.emit("onError", error);
    if (TERMINAL.has(error.code)) {
      this.stop();
      this.link.forget(this.ticketId);
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.sync(), this.backoff.next());
  }

  /** Out-of-order updates wait `gapTimeoutMs` for the missing ones, then we ask the server. */
  private watchGap(): void {
    if (!this.sequencer.hasGap) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
      return;
    }
    if (this.sequencer.overflowing) {
      this.sync();
      return;
    }
    this.gapTimer ??= setTimeout(() => {
      this.gapTimer = undefined;
      if (!this.sequencer.hasGap) return;
      if (this.inflight) this.watchGap();
      else this.sync();
    }, this.options.gapTimeoutMs);
  }

  private deliver(updates: TicketUpdate[]): void {
    for (const update of updates) this.emit("onUpdate", update);
  }

  private clearTimers(): void {
    clearTimeout(this.gapTimer);
    clearTimeout(this.retryTimer);
    this.gapTimer = undefined;
    this.retryTimer = undefined;
  }

  private emit<K extends keyof SubscriptionHandlers>(name: K, ...args: Parameters<NonNullable<SubscriptionHandlers[K]>>): void {
    for (const handlers of [...this.listeners]) this.call(handlers, name, ...args);
  }

  private call<K extends keyof SubscriptionHandlers>(handlers: SubscriptionHandlers, name: K, ...args: Parameters<NonNullable<SubscriptionHandlers[K]>>): void {
    const handler = handlers[name] as ((...a: unknown[]) => void) | undefined;
    if (!handler) return;
    try {
      handler.apply(handlers, args);
    } catch (error) {
      // one faulty handler must not stop delivery to the others, nor corrupt the seq state
      this.link.reportError(TicketClientError.from(error, "HANDLER_FAILED", this.ticketId));
    }
  }
}
