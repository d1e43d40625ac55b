/**
 * How ticket rooms spread over the masters of a 3-master cluster (docs/redis-cluster.md): the slot
 * of each room's shard channel, as Redis computes it (CLUSTER KEYSLOT), mapped to its master. Run:
 *   npx tsx test/experiments/room-spread.ts [TICKETS]
 */
import { Redis } from "ioredis";
import { sharedRedisCluster, stopSharedRedisCluster } from "../support/redis-cluster.js";

const TICKETS = Number(process.argv[2] ?? 10_000);
const redis = await sharedRedisCluster();
const admin = new Redis({ port: redis.nodes[0]!.port, host: "127.0.0.1" });
const ranges = (await admin.cluster("SLOTS")) as unknown as Array<[number, number, [string, number]]>;
const pipeline = admin.pipeline();
for (let i = 1; i <= TICKETS; i++) pipeline.cluster("KEYSLOT", `rg:sio#/#ticket:${i}#`);
const slots = ((await pipeline.exec()) ?? []).map(([, slot]) => Number(slot));
const perMaster = new Map<number, number>();
for (const slot of slots) {
  const port = Number(ranges.find(([from, to]) => slot >= from && slot <= to)![2][1]);
  perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
}
const counts = [...perMaster.values()];
console.log(`${TICKETS} ticket rooms over ${perMaster.size} masters:`, counts.join(" / "), `(max/mean ${(Math.max(...counts) / (TICKETS / perMaster.size)).toFixed(3)}), distinct slots: ${new Set(slots).size}`);
admin.disconnect();
await stopSharedRedisCluster();
process.exit(0);
