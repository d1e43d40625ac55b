import { expect } from "chai";
import pg from "pg";
import { connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql, waitSequenced } from "./support/db.js";
import { range, recordHistory } from "./support/history.js";
import { forEachEventSource } from "./support/event-sources.js";

forEachEventSource(() => describe("PostgreSQL pipeline: concurrent writers", () => {
  it("20 writers on a few tickets: every subscriber sees exactly seq 1..N per ticket, no gap, duplicate or reordering", async function () {
    this.timeout(60_000);
    const cluster = await startCluster(2);
    const tickets = ["c1", "c2", "c3"];
    const sockets = await Promise.all(cluster.urls.flatMap((url, i) => [connect(url, { sub: `s${i}a` }), connect(url, { sub: `s${i}b` })]));
    for (const socket of sockets) for (const ticketId of tickets) await request(socket, "ticket:subscribe", { ticketId });
    const histories = sockets.map(recordHistory);

    const until = Date.now() + 3000;
    const writers = Array.from({ length: 20 }, async (_, w) => {
      const client = new pg.Client({ connectionString: cluster.databaseUrl });
      await client.connect();
      let n = 0;
      try {
        while (Date.now() < until) {
          // some transactions publish several events, to several tickets, some roll back
          await client.query("BEGIN");
          const ticket = tickets[(w + n) % tickets.length]!;
          await client.query("SELECT realtime.publish_ticket_event($1, 'w', $2)", [ticket, { w, n }]);
          if (n % 5 === 0) await client.query("SELECT realtime.publish_ticket_event($1, 'w2', $2)", [ticket, { w, n }]);
          await client.query(n % 7 === 3 ? "ROLLBACK" : "COMMIT");
          n += 1;
        }
      } finally {
        await client.end();
      }
    });
    await Promise.all(writers);
    await waitSequenced(cluster.databaseUrl); // seqs are assigned after commit
    const heads = new Map(
      (await sql<{ ticket_id: string; last_seq: string }>(cluster.databaseUrl, "SELECT ticket_id, last_seq FROM realtime.ticket_heads")).map((r) => [r.ticket_id, Number(r.last_seq)]),
    );
    for (const ticketId of tickets) expect(heads.get(ticketId), ticketId).to.be.greaterThan(10);
    await eventually(
      () => histories.every((h) => tickets.every((t) => (h.delivered.get(t)?.length ?? 0) >= heads.get(t)!)),
      "every subscriber to receive every committed event",
      30_000,
    );
    for (const history of histories) {
      for (const ticketId of tickets) expect(history.delivered.get(ticketId), ticketId).to.deep.equal(range(heads.get(ticketId)!));
      expect(history.outOfOrder).to.equal(0);
      expect(history.duplicates).to.equal(0);
    }
    const events = await sql<{ n: number }>(cluster.databaseUrl, "SELECT count(*)::int AS n FROM realtime.ticket_events");
    expect(events[0]!.n).to.equal([...heads.values()].reduce((a, b) => a + b, 0));
  });
}));
