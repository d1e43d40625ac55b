import { expect } from "chai";
import pg from "pg";
import { connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { createTestDatabase, sql, waitSequenced } from "./support/db.js";
import { forEachEventSource } from "./support/event-sources.js";
import { range, recordHistory } from "./support/history.js";

/** Where the pipeline under test reads from: a migrated database and the gateways' extra environment. */
export interface PipelineTarget {
  databaseUrl: string;
  env: Record<string, string>;
}

const TICKETS = ["dl-A", "dl-B", "dl-C", "dl-D"];
const WRITERS = 12;
const ROUNDS = 25;

/** A deterministic shuffle per (writer, round), so a failure can be replayed. */
function shuffled(items: string[], seed: number): string[] {
  const out = [...items];
  let state = seed * 2654435761 + 1;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function orderFor(writer: number, round: number): string[] {
  if (writer % 3 === 0) return TICKETS;
  if (writer % 3 === 1) return [...TICKETS].reverse();
  return shuffled(TICKETS, writer * 1000 + round);
}

/** A barrier for one round: resolves when every writer arrived; fails if one never does. */
function barrier(parties: number, what: string, timeoutMs: number) {
  let arrived = 0;
  let open!: () => void;
  let fail!: (error: Error) => void;
  const all = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  const timer = setTimeout(() => fail(new Error(`${parties - arrived} of ${parties} writers never got past ${what}: a writer waits on a lock another ticket's writer holds`)), timeoutMs);
  return {
    arrive(): Promise<void> {
      if (++arrived === parties) {
        clearTimeout(timer);
        open();
      }
      return all;
    },
    cancel: () => clearTimeout(timer),
  };
}

/**
 * Transactions that publish to several tickets, in different orders, all open at once: with the
 * commit path paying one INSERT (no per-ticket counter row), none waits on another, none deadlocks
 * (40P01), and every stock socket.io-client subscriber sees exactly the committed seqs 1..n per ticket.
 *
 * Each round, every writer opens a transaction and publishes to its first ticket; only when all of
 * them hold an open transaction with a first event in it do they go on with the other tickets (the
 * ascending, descending and shuffled orders) and a row of a `watch_table`d table per ticket, then
 * commit (one writer of each round rolls back). A commit path that locked anything per ticket would
 * block at the barrier or deadlock right after it.
 */
export async function multiTicketTransactions({ databaseUrl, env }: PipelineTarget): Promise<void> {
  const cluster = await startCluster(2, { databaseUrl, env });
  await sql(databaseUrl, "CREATE TABLE ticket_comments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ticket_id text NOT NULL, body text)");
  await sql(databaseUrl, "SELECT realtime.watch_table('ticket_comments', 'ticket_id')");

  const sockets = await Promise.all(cluster.urls.flatMap((url, i) => [connect(url, { sub: `dl${i}a` }), connect(url, { sub: `dl${i}b` })]));
  for (const socket of sockets) for (const ticketId of TICKETS) expect(await request(socket, "ticket:subscribe", { ticketId })).to.include({ ok: true, seq: 0 });
  const histories = sockets.map(recordHistory);

  const clients = await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    }),
  );
  const committed = new Map(TICKETS.map((t) => [t, 0]));
  const failures: Array<{ writer: number; round: number; code?: string; message: string }> = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const firstPublished = barrier(WRITERS, "their first publish", 15_000);
      await Promise.all(
        clients.map(async (client, writer) => {
          const order = orderFor(writer, round);
          const rollback = writer === round % WRITERS;
          let open = false;
          try {
            await client.query("BEGIN");
            open = true;
            await client.query("SELECT realtime.publish_ticket_event($1, 'dl', $2)", [order[0], { writer, round }]);
            await firstPublished.arrive();
            for (const [i, ticketId] of order.entries()) {
              if (i > 0) await client.query("SELECT realtime.publish_ticket_event($1, 'dl', $2)", [ticketId, { writer, round }]);
              await client.query("INSERT INTO ticket_comments (ticket_id, body) VALUES ($1, $2)", [ticketId, `w${writer} r${round}`]);
            }
            await client.query(rollback ? "ROLLBACK" : "COMMIT");
            open = false;
            if (!rollback) for (const ticketId of order) committed.set(ticketId, committed.get(ticketId)! + 2);
          } catch (error) {
            const { code, message } = error as { code?: string; message: string };
            failures.push({ writer, round, code, message });
            if (open) await client.query("ROLLBACK").catch(() => undefined);
            throw error;
          }
        }),
      ).finally(() => firstPublished.cancel());
    }
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }
  expect(failures, "no transaction failed (no 40P01 deadlock, no lock wait)").to.deep.equal([]);

  await waitSequenced(databaseUrl);
  const rows = await sql<{ ticket_id: string; n: number; max: number; head: number }>(
    databaseUrl,
    `SELECT e.ticket_id, count(*)::int AS n, max(e.seq)::int AS max, h.last_seq::int AS head
     FROM realtime.ticket_events e JOIN realtime.ticket_heads h USING (ticket_id) GROUP BY e.ticket_id, h.last_seq`,
  );
  const heads = new Map(rows.map((r) => [r.ticket_id, r.head]));
  for (const ticketId of TICKETS) {
    const row = rows.find((r) => r.ticket_id === ticketId);
    expect(row, ticketId).to.deep.include({ n: committed.get(ticketId), max: committed.get(ticketId), head: committed.get(ticketId) });
  }
  await eventually(
    () => histories.every((h) => TICKETS.every((t) => (h.delivered.get(t)?.length ?? 0) >= heads.get(t)!)),
    "every subscriber to receive every committed event",
    30_000,
  );
  for (const [i, history] of histories.entries()) {
    for (const ticketId of TICKETS) expect(history.delivered.get(ticketId), `socket ${i}, ${ticketId}`).to.deep.equal(range(heads.get(ticketId)!));
    expect(history.duplicates, `socket ${i} duplicates`).to.equal(0);
    expect(history.outOfOrder, `socket ${i} out of order`).to.equal(0);
  }
}

forEachEventSource(() => describe("PostgreSQL pipeline: multi-ticket transactions", () => {
  it("transactions that publish to several tickets in different orders never deadlock, and every stock client sees exactly the committed seqs", async function () {
    this.timeout(120_000);
    await multiTicketTransactions({ databaseUrl: await createTestDatabase(), env: {} });
  });
}));
