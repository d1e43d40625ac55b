import type { Viewer } from "../protocol.js";
import { dedupe, sameViewers, type PresenceChange, type PresenceStore } from "./types.js";

/** Single-node presence: ticket → socket → viewer. Nothing can die behind its back, so no sweep. */
export function createMemoryPresence(): PresenceStore {
  const tickets = new Map<string, Map<string, Viewer>>();
  // one counter for every ticket: monotonic per ticket even after a ticket's map is dropped
  let rev = 0;
  const list = (ticketId: string): Viewer[] => dedupe(tickets.get(ticketId)?.values() ?? []);
  const change = (before: Viewer[], ticketId: string): PresenceChange => {
    const viewers = list(ticketId);
    const changed = !sameViewers(before, viewers);
    if (changed) rev += 1;
    return { viewers, rev, changed };
  };
  return {
    async join(ticketId, socketId, viewer) {
      const before = list(ticketId);
      let sockets = tickets.get(ticketId);
      if (!sockets) tickets.set(ticketId, (sockets = new Map()));
      sockets.set(socketId, { userId: viewer.userId, name: viewer.name, role: viewer.role });
      return change(before, ticketId);
    },
    async leave(ticketId, socketId) {
      const before = list(ticketId);
      const sockets = tickets.get(ticketId);
      sockets?.delete(socketId);
      if (sockets?.size === 0) tickets.delete(ticketId);
      return change(before, ticketId);
    },
    async viewers(ticketId) {
      return { viewers: list(ticketId), rev };
    },
    onChange() {
      // a single node has no other instance whose viewers could be swept
    },
    async close() {
      tickets.clear();
    },
  };
}
