import { expect } from "chai";
import { migrate } from "../src/db/migrate.js";
import { silentLogger } from "../src/logger.js";
import { connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { range, recordHistory } from "./support/history.js";
import { startPostgresServer } from "./support/postgres-server.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'p', '{}') FROM generate_series(1, $2)", [ticketId, count]);

describe("PostgreSQL restart", () => {
  it("gateways stay up and unready while PostgreSQL is down, re-elect a listener after, and lose no committed event", async function () {
    this.timeout(120_000);
    const postgres = await startPostgresServer();
    await migrate(postgres.url, "ticket_updates", silentLogger);
    const cluster = await startCluster(2, { databaseUrl: postgres.url });
    const leaders = async () => {
      let sum = 0;
      for (const gateway of cluster.gateways) sum += (await gateway.metrics.listenerLeader.get()).values[0]!.value;
      return sum;
    };
    await eventually(async () => (await leaders()) === 1, "one leader");
    const sockets = await Promise.all(cluster.urls.map((url) => connect(url)));
    for (const socket of sockets) await request(socket, "ticket:subscribe", { ticketId: "pg" });
    const histories = sockets.map(recordHistory);
    await publish(postgres.url, "pg", 5);
    await eventually(() => histories.every((h) => h.delivered.get("pg")?.length === 5), "the first events");

    await postgres.stop();
    for (const url of cluster.urls) {
      await eventually(async () => (await fetch(`${url}/readyz`)).status === 503, "/readyz 503 while PostgreSQL is down");
      expect(((await (await fetch(`${url}/readyz`)).json()) as { reason: string }).reason).to.contain("postgres");
    }
    // a subscribe cannot read history now: a clear error, and the socket stays usable
    const during = await request(sockets[0]!, "ticket:subscribe", { ticketId: "other", sinceSeq: 0 }, 15_000);
    expect(during).to.deep.include({ ok: false });
    if (!during.ok) expect(during.error.code).to.equal("UNAVAILABLE");
    await eventually(async () => (await leaders()) === 0, "leadership to end with the session");

    await postgres.start();
    await eventually(async () => (await leaders()) === 1, "a leader again", 30_000);
    await publish(postgres.url, "pg", 5);
    await eventually(() => histories.every((h) => (h.delivered.get("pg")?.length ?? 0) >= 10), "the events after the restart", 20_000);
    for (const history of histories) {
      expect(history.delivered.get("pg")).to.deep.equal(range(10));
      expect(history.duplicates).to.equal(0);
    }
    for (const url of cluster.urls) {
      await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, "/readyz 200 after the restart");
    }
  });
});
