import type { Viewer } from "../protocol.js";

/** Who is viewing each ticket, cluster-wide; each user once however many sockets they hold. */
export interface PresenceStore {
  /** record the socket as a viewer and return the ticket's viewers after the change */
  join(ticketId: string, socketId: string, viewer: Viewer): Promise<Viewer[]>;
  /** remove the socket; returns the viewers after the change */
  leave(ticketId: string, socketId: string, userId: string): Promise<Viewer[]>;
  viewers(ticketId: string): Promise<Viewer[]>;
  close(): Promise<void>;
}
