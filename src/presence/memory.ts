import type { Viewer } from "../protocol.js";
import type { PresenceStore } from "./types.js";

/** Single-node presence: ticket → socket → viewer. */
export function createMemoryPresence(): PresenceStore {
  const tickets = new Map<string, Map<string, Viewer>>();
  const list = (ticketId: string): Viewer[] => {
    const byUser = new Map<string, Viewer>();
    for (const viewer of tickets.get(ticketId)?.values() ?? []) byUser.set(viewer.userId, viewer);
    return [...byUser.values()].sort((a, b) => a.userId.localeCompare(b.userId));
  };
  return {
    async join(ticketId, socketId, viewer) {
      let sockets = tickets.get(ticketId);
      if (!sockets) tickets.set(ticketId, (sockets = new Map()));
      sockets.set(socketId, viewer);
      return list(ticketId);
    },
    async leave(ticketId, socketId) {
      const sockets = tickets.get(ticketId);
      sockets?.delete(socketId);
      if (sockets?.size === 0) tickets.delete(ticketId);
      return list(ticketId);
    },
    async viewers(ticketId) {
      return list(ticketId);
    },
    async close() {
      tickets.clear();
    },
  };
}
