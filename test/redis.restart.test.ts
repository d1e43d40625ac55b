import { expect } from "chai";
import { connect, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { range, recordHistory } from "./support/history.js";
import { startRedisServer } from "./support/redis-server.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'r', '{}') FROM generate_series(1, $2)", [ticketId, count]);

describe("Redis restart", () => {
  it("subscribers on every instance still get every seq exactly once (after de-duplication) when Redis restarts mid-stream", async function () {
    this.timeout(60_000);
    const redis = await startRedisServer();
    for (const mode of ["classic", "sharded"] as const) {
      const cluster = await startCluster(2, { mode, redisUrl: redis.url });
      const ticket = `rr-${mode}`;
      const sockets = await Promise.all(cluster.urls.map((url) => connect(url)));
      for (const socket of sockets) await request(socket, "ticket:subscribe", { ticketId: ticket });
      const histories = sockets.map(recordHistory);
      await publish(cluster.databaseUrl, ticket, 5);
      await eventually(() => histories.every((h) => h.delivered.get(ticket)?.length === 5), "the first events");

      await redis.stop("SIGKILL");
      await publish(cluster.databaseUrl, ticket, 5); // committed while Redis is down
      await new Promise((resolve) => setTimeout(resolve, 300));
      await redis.start();
      await publish(cluster.databaseUrl, ticket, 5);
      await eventually(() => histories.every((h) => (h.delivered.get(ticket)?.length ?? 0) >= 15), "all 15 events on both instances", 20_000);
      for (const history of histories) {
        expect(history.delivered.get(ticket)).to.deep.equal(range(15));
        expect(history.outOfOrder).to.equal(0);
      }
      // the gateways stayed up and are ready again
      for (const url of cluster.urls) {
        await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, "readiness after Redis returned");
      }
      await cluster.stop();
    }
  });
});
