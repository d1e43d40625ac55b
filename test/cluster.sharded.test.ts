/**
 * REDIS_ADAPTER=sharded (dynamic subscriptions): a room's messages reach only the instances that
 * hold a subscriber of it. Shown two ways: Redis' own count of subscribers per shard channel
 * (PUBSUB SHARDNUMSUB) and the messages each instance's subscriber connection actually receives.
 */
import { expect } from "chai";
import { Redis } from "ioredis";
import type { Gateway } from "../src/gateway.js";
import { ticketRoom } from "../src/protocol.js";
import { collect, connect, eventually, quietPeriod, request } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { startCluster } from "./support/cluster.js";
import { TEST_REDIS_URL } from "./support/env.js";

const update = (ticketId: string, seq: number) => ({ ticketId, seq, id: String(seq), type: "test", data: { seq }, at: new Date().toISOString() });

/** The shard channel @socket.io/redis-adapter uses for a room in dynamic mode. */
const roomChannel = (prefix: string, room: string) => `${prefix}:sio#/#${room}#`;

function redisClient(): Redis {
  const client = new Redis(TEST_REDIS_URL, { lazyConnect: false });
  client.on("error", () => undefined);
  onCleanup("redis client", () => client.quit());
  return client;
}

async function shardSubscribers(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.call("PUBSUB", "SHARDNUMSUB", channel)) as [string, number];
  return Number(reply[1]);
}

/**
 * Count the ticket:update messages that arrive on an instance's adapter subscriber connection, per
 * channel (presence announcements travel through the same room channels; they are not counted).
 */
function countMessages(gateway: Gateway): Map<string, number> {
  const sub = gateway.redis!.sub;
  const counts = new Map<string, number>();
  const onMessage = (channel: Buffer | string, message: Buffer | string) => {
    if (!Buffer.from(message).includes("ticket:update")) return;
    counts.set(String(channel), (counts.get(String(channel)) ?? 0) + 1);
  };
  // sharded pub/sub arrives as smessage, classic as message/pmessage
  const onPattern = (_pattern: Buffer | string, channel: Buffer | string, message: Buffer | string) => onMessage(channel, message);
  sub.on("smessageBuffer", onMessage);
  sub.on("messageBuffer", onMessage);
  sub.on("pmessageBuffer", onPattern);
  onCleanup("message counter", () => {
    sub.off("smessageBuffer", onMessage);
    sub.off("messageBuffer", onMessage);
    sub.off("pmessageBuffer", onPattern);
  });
  return counts;
}

const total = (counts: Map<string, number>, filter: (channel: string) => boolean = () => true) =>
  [...counts].filter(([channel]) => filter(channel)).reduce((sum, [, n]) => sum + n, 0);

describe("sharded adapter: traffic only where the subscribers are", () => {
  it("subscribes only the instances that hold a subscriber to a room's shard channel, and delivers only there", async () => {
    const cluster = await startCluster(3, { mode: "sharded" });
    const [gw0, gw1, gw2] = cluster.gateways as [Gateway, Gateway, Gateway];
    const redis = redisClient();
    const channel = roomChannel(cluster.prefix, ticketRoom("42"));

    const a = await connect(cluster.urls[0]!, { sub: "a" });
    const b = await connect(cluster.urls[1]!, { sub: "b" });
    const c = await connect(cluster.urls[2]!, { sub: "c" });
    expect(await shardSubscribers(redis, channel)).to.equal(0);
    await request(a, "ticket:subscribe", { ticketId: "42" });
    await request(b, "ticket:subscribe", { ticketId: "42" });
    await request(c, "ticket:subscribe", { ticketId: "other" });
    await eventually(async () => (await shardSubscribers(redis, channel)) === 2, "two instances on the room's shard channel");

    const counts = [gw0, gw1, gw2].map(countMessages);
    const received = [a, b, c].map((socket) => collect(socket, "ticket:update"));
    // emit from every instance, including the one without subscribers (it publishes, it does not receive)
    for (const [i, gateway] of [gw0, gw1, gw2].entries()) gateway.io.to(ticketRoom("42")).emit("ticket:update", update("42", i + 1));
    await eventually(() => received[0]!.length === 3 && received[1]!.length === 3, "both subscribers to get all three updates");
    await quietPeriod(300);
    expect(received[2], "the instance-2 client subscribed elsewhere").to.be.empty;
    const onRoom = (ch: string) => ch === channel;
    // each subscribed instance gets every publish, its own included (the adapter skips its own by uid)
    expect(total(counts[0]!, onRoom)).to.equal(3);
    expect(total(counts[1]!, onRoom)).to.equal(3);
    expect(total(counts[2]!), "everything instance 2 received from Redis").to.equal(0);

    // a subscriber on instance 2 brings the room's traffic there, and only then
    await request(c, "ticket:subscribe", { ticketId: "42" });
    await eventually(async () => (await shardSubscribers(redis, channel)) === 3, "instance 2 on the shard channel");
    gw0.io.to(ticketRoom("42")).emit("ticket:update", update("42", 4));
    await eventually(() => received[2]!.length === 1, "the new subscriber on instance 2 to get the update");
    await eventually(() => total(counts[2]!, onRoom) === 1, "instance 2 to receive the room's message");

    // the last subscriber of an instance leaving unsubscribes that instance
    await request(a, "ticket:unsubscribe", { ticketId: "42" });
    await request(b, "ticket:unsubscribe", { ticketId: "42" });
    await eventually(async () => (await shardSubscribers(redis, channel)) === 1, "only instance 2 left on the shard channel");
    gw2.io.to(ticketRoom("42")).emit("ticket:update", update("42", 5));
    await eventually(() => received[2]!.length === 2, "the remaining subscriber to get the update");
    await eventually(() => total(counts[2]!, onRoom) === 2, "instance 2 to receive the room's message");
    await quietPeriod(300);
    expect(total(counts[0]!, onRoom), "instance 0 after its last subscriber left").to.equal(4);
    expect(total(counts[1]!, onRoom), "instance 1 after its last subscriber left").to.equal(4);
  });

  it("(contrast) with the classic adapter every instance receives every room's messages", async () => {
    // proves the counter above can see traffic where there is some
    const cluster = await startCluster(2, { mode: "classic" });
    const subscriber = await connect(cluster.urls[0]!, { sub: "a" });
    await request(subscriber, "ticket:subscribe", { ticketId: "42" });
    const idle = countMessages(cluster.gateways[1]!);
    cluster.gateways[0]!.io.to(ticketRoom("42")).emit("ticket:update", update("42", 1));
    await eventually(() => total(idle) > 0, "the instance without subscribers to receive the message anyway");
  });
});
