/**
 * The MVP's raw `NOTIFY ticket_updates, '{"ticketId":"42","type":"x","data":{}}'`: delivered
 * best-effort with `seq: null` (no ordering, no repair: it never was in the outbox).
 */
import { z } from "zod";
import { isTicketId, type TicketUpdate } from "../protocol.js";

const rawNotification = z.object({
  ticketId: z.union([z.string().min(1).max(128), z.number().int()]).transform(String),
  type: z.string().min(1).max(200),
  data: z.unknown().optional(),
});

/** The update a raw payload stands for, or undefined when it is malformed. */
export function parseRawNotification(payload: string): TicketUpdate | undefined {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const parsed = rawNotification.safeParse(json);
  if (!parsed.success || !isTicketId(parsed.data.ticketId)) return undefined;
  return { ticketId: parsed.data.ticketId, seq: null, id: null, type: parsed.data.type, data: parsed.data.data ?? null, at: new Date().toISOString() };
}
