import { expect } from "chai";
import type { TicketUpdate } from "../src/protocol.js";
import { collect, connect, eventually, quietPeriod, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { forEachEventSource } from "./support/event-sources.js";

const seqs = (updates: TicketUpdate[]) => updates.map((u) => u.seq);

forEachEventSource(() => describe("PostgreSQL pipeline: delivery", () => {
  it("delivers publish_ticket_event to subscribers on every instance, in seq order", async () => {
    const cluster = await startCluster(2);
    const [a, b] = await Promise.all(cluster.urls.map((url, i) => connect(url, { sub: `agent-${i}` })));
    for (const socket of [a!, b!]) expect(await request(socket, "ticket:subscribe", { ticketId: "T-1" })).to.include({ ok: true, seq: 0 });
    const seenA = collect(a!, "ticket:update");
    const seenB = collect(b!, "ticket:update");
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const [row] = await sql<{ id: string }>(cluster.databaseUrl, "SELECT realtime.publish_ticket_event($1, $2, $3) AS id", ["T-1", "comment.added", { n: i }]);
      ids.push(row!.id);
    }
    await eventually(() => seenA.length === 5 && seenB.length === 5, "5 updates on both instances");
    expect(seqs(seenA)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(seqs(seenB)).to.deep.equal([1, 2, 3, 4, 5]);
    const first = seenA[0]!;
    expect(first).to.include({ ticketId: "T-1", type: "comment.added", seq: 1 });
    expect(first.data).to.deep.equal({ n: 1 });
    expect(seenA.map((u) => u.id), "publish_ticket_event returns the event's id").to.deep.equal(ids);
    expect(new Date(first.at).toISOString()).to.equal(first.at);
  });

  it("publishes a watched table's inserts, updates and deletes with the row as data", async () => {
    const cluster = await startCluster(1);
    await sql(cluster.databaseUrl, "CREATE TABLE ticket_comments (id serial PRIMARY KEY, ticket_id text NOT NULL, body text)");
    await sql(cluster.databaseUrl, "SELECT realtime.watch_table('ticket_comments', 'ticket_id')");
    const socket = await connect(cluster.urls[0]!);
    await request(socket, "ticket:subscribe", { ticketId: "9" });
    const seen = collect(socket, "ticket:update");
    await sql(cluster.databaseUrl, "INSERT INTO ticket_comments (ticket_id, body) VALUES ('9', 'hello')");
    await sql(cluster.databaseUrl, "UPDATE ticket_comments SET body = 'edited' WHERE ticket_id = '9'");
    await sql(cluster.databaseUrl, "DELETE FROM ticket_comments WHERE ticket_id = '9'");
    await eventually(() => seen.length === 3, "three row events");
    expect(seen.map((u) => [u.seq, u.type])).to.deep.equal([
      [1, "ticket_comments.insert"],
      [2, "ticket_comments.update"],
      [3, "ticket_comments.delete"],
    ]);
    expect(seen[1]!.data).to.deep.include({ ticket_id: "9", body: "edited" });
  });

  it("publishes nothing for a rolled-back transaction, and seq stays gap-free after it", async () => {
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!);
    await request(socket, "ticket:subscribe", { ticketId: "rb" });
    const seen = collect(socket, "ticket:update");
    await sql(cluster.databaseUrl, "BEGIN; SELECT realtime.publish_ticket_event('rb', 'x', '{}'); ROLLBACK;");
    await quietPeriod(500);
    expect(seen).to.be.empty;
    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('rb', 'y', '{}')");
    await eventually(() => seen.length === 1, "the committed event");
    expect(seen[0]).to.include({ seq: 1, type: "y" });
  });

  it("carries a 50 KB payload intact (far beyond NOTIFY's 8000-byte limit)", async () => {
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!);
    await request(socket, "ticket:subscribe", { ticketId: "big" });
    const seen = collect(socket, "ticket:update");
    const body = "x".repeat(50 * 1024);
    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('big', 'attachment', $1)", [{ body, unicode: "çé漢字🎉" }]);
    await eventually(() => seen.length === 1, "the large event");
    expect(seen[0]!.data).to.deep.equal({ body, unicode: "çé漢字🎉" });
  });

  it("delivers the MVP's raw NOTIFY best-effort with seq null, and counts malformed payloads without harm", async () => {
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!);
    await request(socket, "ticket:subscribe", { ticketId: "42" });
    const seen = collect(socket, "ticket:update");
    const malformed = ["not json", "{}", '{"ticketId":"42"}', '{"ticketId":{"x":1},"type":"t"}', '{"ticketId":"bad id!","type":"t"}', "[1,2]", "null"];
    for (const payload of malformed) await sql(cluster.databaseUrl, "SELECT pg_notify('ticket_updates', $1)", [payload]);
    await sql(cluster.databaseUrl, `NOTIFY ticket_updates, '{"ticketId":"42","type":"status.changed","data":{"status":"closed"}}'`);
    await sql(cluster.databaseUrl, `NOTIFY ticket_updates, '{"ticketId":42,"type":"numeric.id"}'`);
    await eventually(() => seen.length === 2, "the two well-formed raw notifications");
    expect(seen[0]).to.include({ ticketId: "42", seq: null, id: null, type: "status.changed" });
    expect(seen[0]!.data).to.deep.equal({ status: "closed" });
    expect(seen[1]).to.include({ ticketId: "42", seq: null, type: "numeric.id" });
    const metrics = await cluster.gateways[0]!.metrics.registry.getSingleMetricAsString("gateway_listener_malformed_notifications_total");
    expect(metrics).to.match(new RegExp(`} ${malformed.length}$`, "m"));
    // the pipeline still works after the garbage
    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('42', 'after', '{}')");
    await eventually(() => seen.length === 3, "a regular event after malformed ones");
    expect(seen[2]).to.include({ seq: 1, type: "after" });
  });

  it("rejects bad SQL input with clear errors", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    const url = cluster.databaseUrl;
    const error = (text: string, values: unknown[] = []) => sql(url, text, values).then(() => undefined, (e: { code?: string; message: string }) => e);
    expect(await error("SELECT realtime.publish_ticket_event('has space', 't', '{}')")).to.include({ code: "22023" });
    expect(await error("SELECT realtime.publish_ticket_event(NULL, 't', '{}')")).to.include({ code: "22023" });
    expect(await error("SELECT realtime.publish_ticket_event('1', '', '{}')")).to.include({ code: "22023" });
    expect(await error(`SELECT realtime.publish_ticket_event('${"x".repeat(129)}', 't', '{}')`)).to.include({ code: "22023" });
    await sql(url, "CREATE TABLE t1 (id int)");
    const missing = await error("SELECT realtime.watch_table('t1', 'nope')");
    expect(missing).to.include({ code: "42703" });
    expect(missing!.message).to.contain("has no column");
    expect(await error("SELECT realtime.watch_table('no_such_table')")).to.include({ code: "42P01" });
    expect(await error("SELECT realtime.evict('1', '')")).to.include({ code: "22023" });
    // a watched row whose ticket column is NULL publishes nothing and does not fail the write
    await sql(url, "CREATE TABLE t2 (id serial, ticket text)");
    await sql(url, "SELECT realtime.watch_table('t2', 'ticket')");
    await sql(url, "INSERT INTO t2 (ticket) VALUES (NULL)");
    expect(await sql(url, "SELECT count(*)::int AS n FROM realtime.ticket_events")).to.deep.equal([{ n: 0 }]);
  });
}));
