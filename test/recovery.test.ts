import { expect } from "chai";
import pg from "pg";
import { createHistory, MAX_REPLAY } from "../src/delivery/history.js";
import { connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { createTestDatabase, sql, waitSequenced } from "./support/db.js";
import { onCleanup } from "./support/cleanup.js";
import { range } from "./support/history.js";
import { forEachEventSource } from "./support/event-sources.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'bulk', jsonb_build_object('i', i)) FROM generate_series(1, $2) AS i", [ticketId, count]);

forEachEventSource(() => describe("recovery with sinceSeq", () => {
  it("a client that missed 500 events gets all of them, in order, on resubscribe", async () => {
    const cluster = await startCluster(2);
    const first = await connect(cluster.urls[0]!);
    await request(first, "ticket:subscribe", { ticketId: "R" });
    const live: number[] = [];
    first.on("ticket:update", (u) => live.push(u.seq!));
    await publish(cluster.databaseUrl, "R", 3);
    await eventually(() => live.length === 3, "the first three events live");
    first.disconnect();

    await publish(cluster.databaseUrl, "R", 500);
    await waitSequenced(cluster.databaseUrl); // seqs are assigned after commit
    // resume on the other instance
    const again = await connect(cluster.urls[1]!);
    const ack = await request(again, "ticket:subscribe", { ticketId: "R", sinceSeq: 3 });
    if (!ack.ok) throw new Error(ack.error.message);
    expect(ack.recovered).to.equal(true);
    expect(ack.seq).to.equal(503);
    expect(ack.missed.map((u) => u.seq)).to.deep.equal(range(503).slice(3));
    expect(ack.missed[0]!.data).to.deep.equal({ i: 1 });
    expect(ack.missed.every((u) => u.ticketId === "R" && u.type === "bulk")).to.equal(true);

    const upToDate = await request(again, "ticket:subscribe", { ticketId: "R", sinceSeq: 503 });
    expect(upToDate).to.include({ ok: true, recovered: true, seq: 503 });
    const ahead = await request(again, "ticket:subscribe", { ticketId: "R", sinceSeq: 9999 });
    expect(ahead).to.include({ ok: true, recovered: false, seq: 503 });
    const fresh = await request(again, "ticket:subscribe", { ticketId: "never-written", sinceSeq: 0 });
    expect(fresh).to.deep.include({ ok: true, recovered: true, seq: 0, missed: [] });
  });

  it("after retention pruned the events, resubscribe says recovered: false", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RETENTION: "1s" } });
    await publish(cluster.databaseUrl, "P", 10);
    const socket = await connect(cluster.urls[0]!);
    await waitSequenced(cluster.databaseUrl);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await cluster.gateways[0]!.delivery!.pruneNow();
    expect(await sql(cluster.databaseUrl, "SELECT count(*)::int AS n FROM realtime.ticket_events")).to.deep.equal([{ n: 0 }]);
    const ack = await request(socket, "ticket:subscribe", { ticketId: "P", sinceSeq: 4 });
    expect(ack).to.deep.include({ ok: true, recovered: false, seq: 10, missed: [] });
    // seq continues after pruning: the counter is not the events table
    const next = new Promise<number | null>((resolve) => socket.once("ticket:update", (u) => resolve(u.seq)));
    await publish(cluster.databaseUrl, "P", 1);
    expect(await next).to.equal(11);
  });

  it(`beyond ${MAX_REPLAY} missed events the client is told to reload`, async () => {
    const cluster = await startCluster(1, { mode: "single" });
    await publish(cluster.databaseUrl, "M", MAX_REPLAY + 5);
    await waitSequenced(cluster.databaseUrl);
    const socket = await connect(cluster.urls[0]!);
    const tooFar = await request(socket, "ticket:subscribe", { ticketId: "M", sinceSeq: 2 });
    expect(tooFar).to.deep.include({ ok: true, recovered: false, seq: MAX_REPLAY + 5, missed: [] });
    const justEnough = await request(socket, "ticket:subscribe", { ticketId: "M", sinceSeq: 5 });
    if (!justEnough.ok) throw new Error(justEnough.error.message);
    expect(justEnough.recovered).to.equal(true);
    expect(justEnough.missed).to.have.length(MAX_REPLAY);
  });

  it("thousands of clients resuming one ticket at once cost a bounded number of queries", async () => {
    const url = await createTestDatabase();
    await publish(url, "hot", 50);
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    onCleanup("pool", () => pool.end());
    let queries = 0;
    const counting = { query: (...args: unknown[]) => ((queries += 1), (pool.query as (...a: unknown[]) => unknown)(...args)) } as unknown as pg.Pool;
    const history = createHistory(counting);
    await startCluster(1, { mode: "single", databaseUrl: url }); // its leader numbers the events
    await waitSequenced(url);
    const results = await Promise.all(Array.from({ length: 3000 }, (_, i) => history.view("hot", i % 50)));
    expect(queries).to.be.at.most(2);
    results.forEach((result, i) => {
      expect(result.recovered).to.equal(true);
      expect(result.events.map((u) => u.seq)).to.deep.equal(range(50).slice(i % 50));
    });
  });
}));
