/**
 * Eviction state stays bounded as realtime.evictions grows: 100,000 rows, a gateway that
 * subscribes, evicts and refuses as usual, and an eviction registry that holds only what it was
 * asked about (the tickets looked up, the evictions heard of), not the table.
 */
import { expect } from "chai";
import { connect, eventually, request, token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";

describe("eviction state with 100,000 evictions", () => {
  it("the registry holds a bounded number of entries and the rule still holds", async function () {
    this.timeout(60_000);
    const cluster = await startCluster(1, { mode: "single" });
    // 100,000 evictions of other users, stamped an hour ago (outside every re-read window), over 1,000 tickets
    await sql(
      cluster.databaseUrl,
      `INSERT INTO realtime.evictions (ticket_id, user_id, evicted_at)
       SELECT 't' || (i % 1000), 'u' || i, clock_timestamp() - interval '1 hour' FROM generate_series(1, 100000) AS i`,
    );
    const gateway = cluster.gateways[0]!;
    const registry = gateway.database!.evictions;
    const heapBefore = process.memoryUsage().heapUsed;
    const sockets = await Promise.all(Array.from({ length: 5 }, (_, i) => connect(cluster.urls[0]!, { sub: `agent-${i}` })));
    for (const [i, socket] of sockets.entries()) expect(await request(socket, "ticket:subscribe", { ticketId: `t${i}` })).to.include({ ok: true });
    // a user evicted an hour ago comes back with a token issued since: let in (the rule reads its row)
    const returning = await connect(cluster.urls[0]!, { token: await token({ sub: "u7" }) });
    expect(await request(returning, "ticket:subscribe", { ticketId: "t7" })).to.include({ ok: true });
    expect(registry.size(), "a handful of tickets, not the table").to.be.at.most(10);
    // a fresh eviction still works end to end
    await sql(cluster.databaseUrl, "SELECT realtime.evict('t0', 'agent-0')");
    await eventually(async () => (await request(sockets[0]!, "ticket:subscribe", { ticketId: "t0" })).ok === false, "the evicted user to be refused");
    expect(registry.size()).to.be.at.most(12);
    expect(process.memoryUsage().heapUsed - heapBefore, "heap growth").to.be.below(64 * 1024 * 1024);
  });
});
