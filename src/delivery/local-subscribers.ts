/**
 * Subscribers of a ticket room that are not Socket.IO sockets (the SSE streams of src/sse/).
 *
 * The ledger's sink writes each update once to the room's local sockets and once to this registry,
 * with the same `attaching` exclusion, so both transports share one delivery pipeline: the same
 * ordering, de-duplication, repair and history-to-live seam. Ids must not collide with socket ids
 * (the SSE layer prefixes them with `sse:`).
 */
import type { TicketUpdate } from "../protocol.js";

export interface LocalSubscriber {
  /** unique among this instance's subscribers of the ticket, sockets included */
  readonly id: string;
  /** write one update; must not throw (a failing writer closes itself) */
  deliver(update: TicketUpdate): void;
}

export class LocalSubscribers {
  private readonly rooms = new Map<string, Map<string, LocalSubscriber>>();

  add(ticketId: string, subscriber: LocalSubscriber): void {
    let room = this.rooms.get(ticketId);
    if (!room) this.rooms.set(ticketId, (room = new Map()));
    room.set(subscriber.id, subscriber);
  }

  remove(ticketId: string, id: string): void {
    const room = this.rooms.get(ticketId);
    if (!room) return;
    room.delete(id);
    if (room.size === 0) this.rooms.delete(ticketId);
  }

  /** Deliver to every subscriber of the update's ticket, except those still attaching. */
  emit(update: TicketUpdate, except: ReadonlySet<string>): void {
    const room = this.rooms.get(update.ticketId);
    if (!room) return;
    for (const subscriber of [...room.values()]) if (!except.has(subscriber.id)) subscriber.deliver(update);
  }
}
