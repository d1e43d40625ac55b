import type { TicketUpdate } from "../protocol.js";

export interface History {
  /** the ticket's latest seq */
  seq: number;
  /** events after sinceSeq, in seq order */
  missed: TicketUpdate[];
  /** false when events after sinceSeq are no longer retained */
  recovered: boolean;
}

/** Read side of the outbox: called after the socket joined the room, so nothing falls between. */
export interface EventStore {
  history(ticketId: string, sinceSeq: number | undefined): Promise<History>;
}
