/** The outbox row as the queries return it, and the wire form every instance delivers. */
import type { TicketUpdate } from "../protocol.js";

export interface EventRow {
  id: string;
  ticket_id: string;
  seq: string;
  type: string;
  data: unknown;
  created_at: Date;
}

export function toUpdate(row: EventRow): TicketUpdate {
  return { ticketId: row.ticket_id, seq: Number(row.seq), id: String(row.id), type: row.type, data: row.data, at: row.created_at.toISOString() };
}
