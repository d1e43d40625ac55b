/**
 * Step 4: each instance delivers a ticket's seqs to its own sockets strictly in order and once.
 *
 * For every ticket room with local subscribers the ledger knows the last seq it delivered there.
 * An incoming event with a seq already delivered is dropped; the next one is delivered; one that
 * skips ahead is held, and the gap is reported so the repairer reads it from the outbox. Whatever
 * path an event takes (bus, repair, a woken ex-leader's late publish), a socket sees it once.
 *
 * A room starts without a position: until the first subscriber's history read tells it the head,
 * live events are held. Sockets still attaching (their history not acked yet) are left out of
 * deliveries; their ack carries every event up to the room's position instead, so each socket's
 * stream is its ack's `missed` followed by live events, with no gap or repeat at the seam.
 */
import type { TicketUpdate } from "../protocol.js";

/** Held (out-of-order) events per room beyond this are not kept: the repair reads them instead. */
export const MAX_HELD = 1000;

export interface LedgerSink {
  /** write the update to the ticket room's local sockets, except those still attaching */
  emit(update: TicketUpdate, except: ReadonlySet<string>): void;
  /** the room has a gap up to a seq the outbox holds: repair it */
  behind(ticketId: string): void;
  /** an event was dropped because the room had it already */
  duplicate(ticketId: string): void;
  /** the room caught up after being behind for `lagMs` */
  caughtUp(ticketId: string, lagMs: number): void;
}

interface Room {
  refs: number;
  /** last seq delivered to this room; undefined until the first history read */
  delivered: number | undefined;
  /** the highest seq known to exist (from a later event or the outbox head) */
  wanted: number;
  held: Map<number, TicketUpdate>;
  attaching: Set<string>;
  behindSince: number | undefined;
}

export interface Gap {
  /** the last delivered seq */
  after: number;
  /** the highest seq known to exist */
  upTo: number;
}

export class Ledger {
  private readonly rooms = new Map<string, Room>();

  constructor(private readonly sink: LedgerSink) {}

  /** A subscription to the ticket starts on this instance. */
  retain(ticketId: string): void {
    const room = this.rooms.get(ticketId);
    if (room) room.refs++;
    else this.rooms.set(ticketId, { refs: 1, delivered: undefined, wanted: 0, held: new Map(), attaching: new Set(), behindSince: undefined });
  }

  /** A subscription ends; true when it was the room's last. */
  release(ticketId: string): boolean {
    const room = this.rooms.get(ticketId);
    if (!room) return false;
    if (--room.refs > 0) return false;
    this.rooms.delete(ticketId);
    return true;
  }

  has(ticketId: string): boolean {
    return this.rooms.has(ticketId);
  }

  tickets(): string[] {
    return [...this.rooms.keys()];
  }

  /** Tickets whose position is known (the reconciler compares those with the outbox). */
  positioned(): Array<[ticketId: string, delivered: number]> {
    const out: Array<[string, number]> = [];
    for (const [ticketId, room] of this.rooms) if (room.delivered !== undefined) out.push([ticketId, room.delivered]);
    return out;
  }

  delivered(ticketId: string): number | undefined {
    return this.rooms.get(ticketId)?.delivered;
  }

  attaching(ticketId: string, socketId: string, on: boolean): void {
    const room = this.rooms.get(ticketId);
    if (!room) return;
    if (on) room.attaching.add(socketId);
    else room.attaching.delete(socketId);
  }

  /** The first history read tells an unpositioned room where the outbox stands. */
  initialize(ticketId: string, head: number): void {
    const room = this.rooms.get(ticketId);
    if (!room || room.delivered !== undefined) return;
    room.delivered = head;
    for (const seq of room.held.keys()) if (seq <= head) room.held.delete(seq);
    this.flush(ticketId, room);
  }

  /** Deliver, hold or drop one event. */
  accept(update: TicketUpdate): void {
    const room = this.rooms.get(update.ticketId);
    if (!room) return;
    const seq = update.seq;
    // the MVP's raw NOTIFY messages carry no seq: best-effort, straight through
    if (seq === null) return this.sink.emit(update, room.attaching);
    if (room.delivered !== undefined && seq <= room.delivered) return this.sink.duplicate(update.ticketId);
    if (room.delivered !== undefined && seq === room.delivered + 1) {
      room.delivered = seq;
      this.sink.emit(update, room.attaching);
      return this.flush(update.ticketId, room);
    }
    if (room.held.has(seq)) return this.sink.duplicate(update.ticketId);
    if (room.held.size < MAX_HELD) room.held.set(seq, update);
    this.want(update.ticketId, seq - 1, room);
  }

  /** The outbox (or a later event) says seqs up to `seq` exist: a room short of it is behind. */
  want(ticketId: string, seq: number, room = this.rooms.get(ticketId)): void {
    if (!room) return;
    if (seq > room.wanted) room.wanted = seq;
    if (room.delivered !== undefined && room.delivered < room.wanted) {
      room.behindSince ??= Date.now();
      this.sink.behind(ticketId);
    }
  }

  /** What the room is missing, or undefined when it is complete (or not positioned yet). */
  gap(ticketId: string): Gap | undefined {
    const room = this.rooms.get(ticketId);
    if (!room || room.delivered === undefined || room.delivered >= room.wanted) return undefined;
    return { after: room.delivered, upTo: room.wanted };
  }

  /**
   * The outbox no longer holds seqs up to `seq` (pruned past retention): move past them, so the
   * room does not wait forever. Its sockets see a jump, which a retention of days makes moot.
   */
  skipTo(ticketId: string, seq: number): void {
    const room = this.rooms.get(ticketId);
    if (!room || room.delivered === undefined || seq <= room.delivered) return;
    room.delivered = seq;
    for (const held of room.held.keys()) if (held <= seq) room.held.delete(held);
    this.flush(ticketId, room);
  }

  private flush(ticketId: string, room: Room): void {
    let next: TicketUpdate | undefined;
    while ((next = room.held.get(room.delivered! + 1))) {
      room.held.delete(next.seq!);
      room.delivered = next.seq!;
      this.sink.emit(next, room.attaching);
    }
    if (room.delivered! < room.wanted) {
      room.behindSince ??= Date.now();
      this.sink.behind(ticketId);
    } else if (room.behindSince !== undefined) {
      this.sink.caughtUp(ticketId, Date.now() - room.behindSince);
      room.behindSince = undefined;
    }
  }
}
