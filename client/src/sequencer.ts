/**
 * Per-ticket ordering: turns the updates a socket receives (live, replayed, duplicated, early,
 * out of order) into exactly-once, in-seq-order delivery. Pure logic, no timers and no I/O, so
 * the ticket client decides when a gap is worth a re-subscribe.
 */
import type { SubscribeResult, TicketUpdate } from "./protocol.js";

export interface SequencerStats {
  delivered: number;
  duplicates: number;
  /** updates that arrived ahead of a gap and waited for it to fill */
  heldBack: number;
}

/** What an ack tells the sequencer, and what it then hands to the app. */
export interface SnapshotOutcome {
  /** events to deliver, in order */
  deliver: TicketUpdate[];
  /** true when the server could not replay the missed events: the app must reload the ticket */
  reset: boolean;
}

export class Sequencer {
  /** the last seq delivered to the app; undefined until the first ack (or a known starting point) */
  private last: number | undefined;
  /** updates ahead of `last + 1`, by seq */
  private readonly held = new Map<number, TicketUpdate>();
  readonly stats: SequencerStats = { delivered: 0, duplicates: 0, heldBack: 0 };

  constructor(
    startAfter?: number,
    /** more held updates than this and the client stops waiting and re-subscribes */
    readonly maxHeld = 1000,
  ) {
    this.last = startAfter;
  }

  get lastSeq(): number | undefined {
    return this.last;
  }

  /** true while updates wait for an earlier seq that has not arrived */
  get hasGap(): boolean {
    return this.held.size > 0;
  }

  get overflowing(): boolean {
    return this.held.size > this.maxHeld;
  }

  /** A live update: returns what may be delivered now (nothing, it, or it plus held ones). */
  push(update: TicketUpdate): TicketUpdate[] {
    // best-effort raw NOTIFY messages carry no seq: nothing to order them by
    if (update.seq === null) return [update];
    if (this.last === undefined) {
      // before the first ack we do not know where the stream starts: keep everything
      this.hold(update);
      return [];
    }
    if (update.seq <= this.last || this.held.has(update.seq)) {
      this.stats.duplicates += 1;
      return [];
    }
    if (update.seq > this.last + 1) {
      this.hold(update);
      return [];
    }
    return this.advance([update]);
  }

  /**
   * A subscribe ack. `sinceSeq` is what the request asked for (undefined on a first subscribe).
   * Missed events and held live ones merge into one ordered run; duplicates drop.
   */
  applySnapshot(ack: Pick<SubscribeResult, "seq" | "missed" | "recovered">, sinceSeq: number | undefined): SnapshotOutcome {
    if (!ack.recovered) {
      // the history is gone: start over at the server's head and keep only what lies beyond it
      this.last = ack.seq;
      this.dropThrough(ack.seq);
      return { deliver: this.advance([]), reset: true };
    }
    if (this.last === undefined) {
      this.last = sinceSeq ?? ack.seq;
      this.dropThrough(this.last);
    }
    for (const update of ack.missed) {
      if (update.seq === null || update.seq <= this.last || this.held.has(update.seq)) continue;
      this.held.set(update.seq, update);
    }
    return { deliver: this.advance([]), reset: false };
  }

  private hold(update: TicketUpdate): void {
    const seq = update.seq!;
    if (this.held.has(seq)) {
      this.stats.duplicates += 1;
      return;
    }
    this.held.set(seq, update);
    this.stats.heldBack += 1;
  }

  private dropThrough(seq: number): void {
    for (const held of this.held.keys()) if (held <= seq) this.held.delete(held);
  }

  /** deliver `first` (already known to be last + 1), then every held update that now follows */
  private advance(first: TicketUpdate[]): TicketUpdate[] {
    const out: TicketUpdate[] = [];
    for (const update of first) {
      out.push(update);
      this.last = update.seq!;
    }
    for (let next = this.held.get(this.last! + 1); next; next = this.held.get(this.last! + 1)) {
      this.held.delete(next.seq!);
      out.push(next);
      this.last = next.seq!;
    }
    this.stats.delivered += out.length;
    return out;
  }
}
