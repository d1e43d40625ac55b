/**
 * Measurement behind REDIS_CLUSTER's refusal of REDIS_ADAPTER=classic (docs/redis-cluster.md):
 * two Socket.IO servers on a real 3-master Redis Cluster, one emits N numbered updates to a room
 * back to back, a client on the other counts arrivals out of order. Run:
 *   npx tsx test/experiments/classic-on-cluster.ts [N]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Cluster } from "ioredis";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { sharedRedisCluster, stopSharedRedisCluster } from "../support/redis-cluster.js";

const N = Number(process.argv[2] ?? 2000);

async function trial(kind: "classic" | "sharded", seeds: Array<{ host: string; port: number }>) {
  const clients: Cluster[] = [];
  const cluster = (sharded = false) => {
    const c = new Cluster(seeds, { shardedSubscribers: sharded });
    c.on("error", () => undefined);
    clients.push(c);
    return c;
  };
  const servers = await Promise.all(
    [0, 1].map(async () => {
      const http = createServer();
      const io = new Server(http);
      const pub = cluster();
      const sub = cluster(kind === "sharded");
      io.adapter(kind === "classic" ? createAdapter(pub, sub, { key: `exp-${kind}` }) : (createShardedAdapter(pub, sub, { channelPrefix: `exp-${kind}`, subscriptionMode: "dynamic" }) as never));
      io.on("connection", (socket) => socket.join("room"));
      await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
      return { io, http, port: (http.address() as AddressInfo).port };
    }),
  );
  const client = connect(`http://127.0.0.1:${servers[1]!.port}`, { transports: ["websocket"] });
  await new Promise<void>((resolve) => client.on("connect", () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 500)); // let the room subscription land (experiment only)
  const seen: number[] = [];
  const done = new Promise<void>((resolve) => client.on("u", (n: number) => seen.push(n) === N && resolve()));
  for (let i = 1; i <= N; i++) servers[0]!.io.to("room").emit("u", i);
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  let inversions = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i]! < seen[i - 1]!) inversions += 1;
  console.log(`${kind}: ${seen.length}/${N} delivered, ${inversions} arrivals out of order${inversions ? `, first: ${seen.slice(0, 12).join(",")}` : ""}`);
  client.close();
  for (const s of servers) {
    s.io.close();
    s.http.close();
  }
  for (const c of clients) c.disconnect();
}

const redis = await sharedRedisCluster();
const seeds = redis.url.split(",").map((u) => ({ host: "127.0.0.1", port: Number(new URL(u).port) }));
await trial("classic", seeds);
await trial("sharded", seeds);
await stopSharedRedisCluster();
process.exit(0);
