/**
 * What a careful client does with `ticket:update`: drop seqs it has seen, and record the rest, so
 * a test can assert "every seq exactly once, in order" per ticket.
 */
import type { TicketUpdate } from "../../src/protocol.js";
import type { TestSocket } from "./client.js";

export interface History {
  /** per ticket, the seqs delivered in arrival order after de-duplication */
  delivered: Map<string, number[]>;
  /** how many duplicates were dropped */
  duplicates: number;
  /** per ticket, arrivals whose seq was not exactly last + 1 (after de-duplication) */
  outOfOrder: number;
}

export function recordHistory(socket: TestSocket): History {
  const history: History = { delivered: new Map(), duplicates: 0, outOfOrder: 0 };
  socket.on("ticket:update", (update: TicketUpdate) => {
    if (update.seq === null) return;
    const list = history.delivered.get(update.ticketId) ?? [];
    history.delivered.set(update.ticketId, list);
    const last = list[list.length - 1] ?? 0;
    if (update.seq <= last) {
      history.duplicates += 1;
      return;
    }
    if (update.seq !== last + 1) history.outOfOrder += 1;
    list.push(update.seq);
  });
  return history;
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
