import type { Viewer } from "../protocol.js";

/**
 * A ticket's viewers at one moment. `rev` grows with every change cluster-wide, so a client that
 * receives two lists out of order (a local emit can overtake one relayed through Redis) keeps the
 * one with the higher `rev`.
 */
export interface PresenceSnapshot {
  /** one entry per user, sorted by userId */
  viewers: Viewer[];
  rev: number;
}

/** The result of a join or leave; `changed` is false when the viewer list stayed the same (a second tab). */
export interface PresenceChange extends PresenceSnapshot {
  changed: boolean;
  /**
   * false when, as the change was made, no other instance held a viewer of the ticket: none of its
   * sockets is in the room (a socket whose join comes later reads this list in its own ack), so
   * the announcement need not leave this instance. Absent: announce cluster-wide.
   */
  remote?: boolean;
}

/** Who is viewing each ticket, cluster-wide; each user once however many sockets they hold. */
export interface PresenceStore {
  /** record the socket as a viewer */
  join(ticketId: string, socketId: string, viewer: Viewer): Promise<PresenceChange>;
  /** remove the socket (a socket that never joined changes nothing) */
  leave(ticketId: string, socketId: string, userId: string): Promise<PresenceChange>;
  viewers(ticketId: string): Promise<PresenceSnapshot>;
  /**
   * Changes this instance did not cause through join/leave: viewers of a dead instance swept away,
   * or this instance's own viewers re-registered after an outage. The listener announces them.
   */
  onChange(listener: (ticketId: string, snapshot: PresenceSnapshot) => void): void;
  /** remove this instance's viewers (announced through `onChange`) and stop background work */
  close(): Promise<void>;
}

/** Viewers deduplicated by user (the smallest entry wins, so every instance picks the same one), sorted. */
export function dedupe(entries: Iterable<Viewer>): Viewer[] {
  const byUser = new Map<string, Viewer>();
  const key = (v: Viewer) => `${v.userId}\u0000${v.name}\u0000${v.role}`;
  for (const viewer of entries) {
    const held = byUser.get(viewer.userId);
    if (!held || key(viewer) < key(held)) byUser.set(viewer.userId, viewer);
  }
  return [...byUser.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
}

export function sameViewers(a: Viewer[], b: Viewer[]): boolean {
  return a.length === b.length && a.every((v, i) => v.userId === b[i]!.userId && v.name === b[i]!.name && v.role === b[i]!.role);
}
