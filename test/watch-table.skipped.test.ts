/**
 * watch_table never fails the application's write: rows whose ticket column is NULL or not a
 * valid ticket id are skipped, recorded in realtime.skipped_events, counted and logged by the
 * gateway; valid rows in the same transaction are delivered as usual.
 */
import { expect } from "chai";
import { collect, connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { forEachEventSource } from "./support/event-sources.js";

forEachEventSource(() => describe("watch_table with invalid ticket ids", () => {
  it("commits the application's write, publishes the valid rows, and counts the skipped ones", async function () {
    this.timeout(60_000);
    const cluster = await startCluster(1);
    const db = cluster.databaseUrl;
    await sql(db, "CREATE TABLE ticket_comments (id serial PRIMARY KEY, ticket_id text, body text)");
    await sql(db, "SELECT realtime.watch_table('ticket_comments', 'ticket_id')");
    const socket = await connect(cluster.urls[0]!);
    expect(await request(socket, "ticket:subscribe", { ticketId: "9" })).to.include({ ok: true });
    const seen = collect(socket, "ticket:update");

    // one application transaction mixing valid and invalid rows: before migration 3 it raised
    await sql(
      db,
      `BEGIN;
       INSERT INTO ticket_comments (ticket_id, body) VALUES ('9', 'valid'), (NULL, 'no ticket'), ('has space', 'bad'), (repeat('x', 200), 'too long');
       UPDATE ticket_comments SET ticket_id = 'bad id!' WHERE body = 'valid';
       DELETE FROM ticket_comments WHERE body = 'bad';
       COMMIT;`,
    );
    const rows = await sql<{ body: string; ticket_id: string | null }>(db, "SELECT body, ticket_id FROM ticket_comments ORDER BY id");
    expect(rows).to.deep.equal([
      { body: "valid", ticket_id: "bad id!" },
      { body: "no ticket", ticket_id: null },
      { body: "too long", ticket_id: "x".repeat(200) },
    ]);

    // ticket 9 hears of the insert, and of the update that moved the row away from it
    await eventually(() => seen.length === 2, "the two events of ticket 9");
    expect(seen.map((u) => [u.seq, u.type])).to.deep.equal([
      [1, "ticket_comments.insert"],
      [2, "ticket_comments.update"],
    ]);
    expect(seen[1]!.data).to.deep.include({ ticket_id: "bad id!", body: "valid" });

    // skipped: the NULL, the space and the 200-character inserts, the update's new side, the delete
    const gateway = cluster.gateways[0]!;
    const skipped = async () => (await gateway.metrics.watchSkippedRows.get()).values[0]?.value ?? 0;
    await eventually(async () => (await skipped()) === 5, "five skipped rows counted", 20_000, 100);
    expect(await sql(db, "SELECT count(*)::int AS n FROM realtime.skipped_events")).to.deep.equal([{ n: 0 }]);
    expect(seen).to.have.length(2);
  });

  it("records what was skipped and why until a gateway takes it", async () => {
    // no gateway on this database: the rows stay for one to count
    const cluster = await startCluster(0);
    const db = cluster.databaseUrl;
    await sql(db, "CREATE TABLE orders (id serial PRIMARY KEY, ticket bigint)");
    await sql(db, "SELECT realtime.watch_table('orders', 'ticket')");
    await sql(db, "INSERT INTO orders (ticket) VALUES (42), (NULL)");
    const recorded = await sql(db, "SELECT table_name, op, ticket_column, reason, ticket_value FROM realtime.skipped_events");
    expect(recorded).to.deep.equal([{ table_name: "public.orders", op: "insert", ticket_column: "ticket", reason: "null ticket id", ticket_value: null }]);
    // the numeric id was published as "42"
    expect(await sql(db, "SELECT ticket_id, type FROM realtime.ticket_events")).to.deep.equal([{ ticket_id: "42", type: "orders.insert" }]);
  });
}));
