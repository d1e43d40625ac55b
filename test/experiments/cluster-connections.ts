/**
 * How many connections one instance's Redis clients open to a 3-master cluster (docs/redis-cluster.md):
 * the pub and sub Cluster clients, with the adapter subscribed to rooms on every master. Run:
 *   npx tsx test/experiments/cluster-connections.ts
 */
import { Redis } from "ioredis";
import { silentLogger } from "../../src/logger.js";
import { createRedisClients } from "../../src/redis.js";
import { sharedRedisCluster, stopSharedRedisCluster } from "../support/redis-cluster.js";

const redis = await sharedRedisCluster();
const clients = createRedisClients(redis.url, silentLogger, { cluster: true });
while (!clients.ready()) await new Promise((resolve) => setTimeout(resolve, 50));
// commands to every master (as scripts and rate limits do), and shard channels on every master
for (let i = 0; i < 64; i++) await clients.pub.get(`k${i}`);
for (let i = 0; i < 64; i++) await clients.sub.ssubscribe(`rg:sio#/#ticket:${i}#`);
await new Promise((resolve) => setTimeout(resolve, 300));
let total = 0;
for (const node of redis.nodes) {
  const admin = new Redis({ port: node.port, host: "127.0.0.1" });
  const list = (await admin.client("LIST")) as string;
  const names = list.split("\n").map((l) => /name=(\S*)/.exec(l)?.[1]).filter((n): n is string => !!n && n.includes("gateway"));
  const byName = new Map<string, number>();
  for (const n of names) byName.set(n, (byName.get(n) ?? 0) + 1);
  total += names.length;
  console.log(`node ${node.port}:`, Object.fromEntries(byName));
  admin.disconnect();
}
console.log(`total connections of one instance to a 3-master cluster: ${total}`);
await clients.close();
await stopSharedRedisCluster();
process.exit(0);
