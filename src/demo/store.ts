/**
 * The demo helpdesk's tables (created by `seedDemo` in db/embedded.ts): reads for the page and
 * the writes behind its buttons. Writes go through the watched tables, so every change the page
 * shows has made the real round trip: trigger → outbox → listener → Socket.IO.
 */
import type pg from "pg";

export const STATUSES = ["open", "pending", "solved", "closed"] as const;
export type Status = (typeof STATUSES)[number];

export interface TicketRow {
  id: string;
  subject: string;
  status: string;
  priority: string;
  assignee: string | null;
  updated_at: string;
}

export interface CommentRow {
  id: string;
  ticket_id: string;
  author: string;
  body: string;
  created_at: string;
}

export interface TicketSnapshot {
  ticket: TicketRow;
  comments: CommentRow[];
  /** the ticket's realtime seq as of this snapshot: apply only updates after it */
  seq: number;
}

export class DemoStore {
  constructor(private readonly pool: pg.Pool) {}

  async tickets(): Promise<TicketRow[]> {
    const { rows } = await this.pool.query<TicketRow>("SELECT * FROM public.tickets ORDER BY id");
    return rows;
  }

  /** Ticket, comments and seq read in one snapshot, so they agree with each other. */
  async snapshot(id: string): Promise<TicketSnapshot | undefined> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const ticket = await client.query<TicketRow>("SELECT * FROM public.tickets WHERE id = $1", [id]);
      if (!ticket.rows[0]) return undefined;
      const comments = await client.query<CommentRow>("SELECT * FROM public.ticket_comments WHERE ticket_id = $1 ORDER BY id", [id]);
      const seq = await client.query<{ last_seq: string }>("SELECT last_seq FROM realtime.ticket_heads WHERE ticket_id = $1", [id]);
      return { ticket: ticket.rows[0], comments: comments.rows, seq: Number(seq.rows[0]?.last_seq ?? 0) };
    } finally {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release();
    }
  }

  async setStatus(id: string, status: Status): Promise<TicketRow | undefined> {
    const { rows } = await this.pool.query<TicketRow>(
      "UPDATE public.tickets SET status = $2, updated_at = now() WHERE id = $1 RETURNING *",
      [id, status],
    );
    return rows[0];
  }

  /** undefined when the ticket does not exist */
  async addComment(ticketId: string, author: string, body: string): Promise<CommentRow | undefined> {
    try {
      const { rows } = await this.pool.query<CommentRow>(
        "INSERT INTO public.ticket_comments (ticket_id, author, body) VALUES ($1, $2, $3) RETURNING *",
        [ticketId, author, body],
      );
      return rows[0];
    } catch (error) {
      if ((error as { code?: string }).code === "23503") return undefined; // foreign_key_violation
      throw error;
    }
  }
}
