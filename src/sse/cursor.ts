/**
 * The stream cursor: every ticket's last delivered seq, as one SSE `id:`, so the `Last-Event-ID`
 * an `EventSource` sends back on reconnect resumes every ticket of the stream.
 *
 * Form: `<ticketId>.<seq>` entries joined by `~`, e.g. `1.5~42.9` (ticket ids may contain `.`,
 * so an entry splits at its last `.`; `~` is not allowed in ticket ids). URL- and header-safe, so a
 * client may also pass it as `?last_event_id=`. Parsed strictly: anything else is refused, never
 * guessed at, and its size is bounded before it is split.
 */
import { TICKET_ID_PATTERN } from "../protocol.js";

export type Cursor = Map<string, number>;

/**
 * Longest cursor, written or accepted: it travels back as a request header, and Node refuses
 * request headers over 16 KiB in all. A stream whose tickets could outgrow it is refused at open.
 */
export const MAX_CURSOR_LENGTH = 8192;
/** the `.`, up to 16 seq digits and the `~` around a ticket id in the cursor */
export const CURSOR_ENTRY_OVERHEAD = 18;
const MAX_TICKET_ID_LENGTH = 128;

export class CursorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CursorError";
  }
}

export function validTicketId(ticketId: string): boolean {
  return ticketId.length > 0 && ticketId.length <= MAX_TICKET_ID_LENGTH && TICKET_ID_PATTERN.test(ticketId) && !ticketId.includes("~");
}

export function formatCursor(cursor: Cursor): string {
  return [...cursor].map(([ticketId, seq]) => `${ticketId}.${seq}`).join("~");
}

export function parseCursor(text: string, maxEntries: number): Cursor {
  if (text.length > MAX_CURSOR_LENGTH) throw new CursorError(`Last-Event-ID is longer than ${MAX_CURSOR_LENGTH} characters`);
  const cursor: Cursor = new Map();
  if (text === "") return cursor;
  const entries = text.split("~");
  if (entries.length > maxEntries) throw new CursorError(`Last-Event-ID names more than ${maxEntries} tickets`);
  for (const entry of entries) {
    const dot = entry.lastIndexOf(".");
    const ticketId = entry.slice(0, dot);
    const digits = entry.slice(dot + 1);
    if (dot <= 0 || !validTicketId(ticketId) || !/^(0|[1-9]\d{0,15})$/.test(digits)) {
      throw new CursorError("Last-Event-ID is not a cursor of this gateway (expected ticketId.seq entries joined by ~)");
    }
    const seq = Number(digits);
    if (!Number.isSafeInteger(seq)) throw new CursorError("Last-Event-ID holds a seq out of range");
    if (cursor.has(ticketId)) throw new CursorError(`Last-Event-ID names ticket ${ticketId} twice`);
    cursor.set(ticketId, seq);
  }
  return cursor;
}
