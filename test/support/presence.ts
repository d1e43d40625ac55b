/** What a client of `ticket:presence` shows, for presence, eviction and refresh tests. */
import { expect } from "chai";
import type { PresenceUpdate, Viewer } from "../../src/protocol.js";
import { eventually, request, type TestSocket } from "./client.js";

/** What a client shows: the viewer list with the highest rev seen (ack or event). */
export class Watcher {
  rev = -1;
  viewers: Viewer[] = [];
  readonly events: PresenceUpdate[] = [];
  constructor(
    readonly socket: TestSocket,
    readonly ticketId: string,
    readonly userId: string,
  ) {
    socket.on("ticket:presence", (update) => {
      if (update.ticketId !== ticketId) return;
      this.events.push(update);
      this.apply(update.rev, update.viewers);
    });
  }
  apply(rev: number, viewers: Viewer[]): void {
    if (rev <= this.rev) return;
    this.rev = rev;
    this.viewers = viewers;
  }
  get users(): string[] {
    return this.viewers.map((v) => v.userId);
  }
  async subscribe(): Promise<void> {
    const ack = await request(this.socket, "ticket:subscribe", { ticketId: this.ticketId });
    if (!ack.ok) throw new Error(`subscribe failed: ${ack.error.code}`);
    expect(ack.viewers.map((v) => v.userId), "the ack lists the viewers, the subscriber included").to.include(this.userId);
    this.apply(ack.presenceRev, ack.viewers);
  }
}

export async function allSee(watchers: Watcher[], users: string[], what: string): Promise<void> {
  await eventually(() => watchers.every((w) => JSON.stringify(w.users) === JSON.stringify(users)), `${what}: every viewer to show ${users.join(", ") || "nobody"}`);
}

