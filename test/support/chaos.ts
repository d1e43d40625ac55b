/**
 * The chaos harness: a cluster whose every process the test owns (gateway child processes, a
 * private redis-server, optionally a private PostgreSQL and TCP proxies in front of it and of the
 * gateways), writers committing at a steady rate, and stock socket.io-client sockets that record
 * every `ticket:update` they receive, without de-duplication. `verify()` waits until the outbox is
 * fully delivered and checks every socket's history per ticket: exactly seq 1..N, N = the head
 * PostgreSQL committed. A duplicate, a gap or a reordering fails the scenario.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { io, type Socket } from "socket.io-client";
import { expect } from "chai";
import type { TicketUpdate } from "../../src/protocol.js";
import { onCleanup } from "./cleanup.js";
import { eventually, token } from "./client.js";
import { clusterEnv, randomPrefix } from "./cluster.js";
import { createTestDatabase, sql, waitSequenced } from "./db.js";
import { currentEventSource } from "./event-sources.js";
import { sample, scrape } from "./metrics.js";
import { startPostgresServer, type PostgresServer } from "./postgres-server.js";
import { spawnGateway, type GatewayProcess } from "./process.js";
import { startRedisServer, type RedisServer } from "./redis-server.js";
import { readyRoundRobin, startProxy, type TcpProxy } from "./tcp-proxy.js";
import { range } from "./history.js";
import { migrate } from "../../src/db/migrate.js";
import { silentLogger } from "../../src/logger.js";

export interface ChaosOptions {
  instances: number;
  /** a private PostgreSQL the scenario may restart (default: a database on the shared server) */
  privatePostgres?: boolean;
  /** instances whose PostgreSQL connections go through a TCP proxy the test can cut */
  proxiedPostgres?: number[];
  env?: Record<string, string>;
}

/** A stock socket.io-client socket and everything it received, per ticket, in arrival order. */
export interface ChaosClient {
  socket: Socket;
  userId: string;
  tickets: string[];
  seqs: Map<string, number[]>;
  /** per ticket, the seq the first subscribe's ack started from (its stream is start+1 ..) */
  start: Map<string, number>;
  revoked: Map<string, number>;
  /** arrival time of the last update per ticket */
  lastAt: Map<string, number>;
  close(): void;
}

export interface Chaos {
  redis: RedisServer;
  postgres: PostgresServer | undefined;
  databaseUrl: string;
  gateways: Array<GatewayProcess | undefined>;
  pgProxy: TcpProxy | undefined;
  /** clients connected through it reach a ready instance, round-robin */
  balancer: TcpProxy;
  clients: ChaosClient[];
  /** (re)start instance i */
  spawn(i: number): Promise<GatewayProcess>;
  /** the index of the instance that leads, once exactly one does */
  leader(timeoutMs?: number): Promise<number>;
  /** `CLIENT KILL` of instance i's Redis subscriber connection */
  killSubscriber(i: number): Promise<number>;
  client(url: string, tickets: string[], userId?: string): Promise<ChaosClient>;
  writers: Writers;
  /** sum of a metric over the live instances */
  metric(name: string, labels?: string): Promise<number>;
  verify(options?: { timeoutMs?: number; exclude?: (client: ChaosClient, ticketId: string) => boolean }): Promise<ChaosReport>;
}

export interface ChaosReport {
  clients: number;
  tickets: number;
  events: number;
  /** what the sockets received, checked one by one */
  deliveries: number;
  /** of those, repaired from the outbox (summed over the instances still alive) */
  repaired: number;
  /** events the instances dropped as already delivered (echoes, late publishes) */
  duplicatesDropped: number;
  msToComplete: number;
}

export interface Writers {
  /** commit `ratePerSecond` events spread over `tickets`, until stop() */
  start(tickets: string[], ratePerSecond: number): void;
  stop(): Promise<void>;
  /** statements that failed (expected while PostgreSQL is away) */
  failures: number;
}

function startWriters(databaseUrl: string): Writers {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, connectionTimeoutMillis: 2000, query_timeout: 5000 });
  pool.on("error", () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const inflight = new Set<Promise<unknown>>();
  let n = 0;
  const writers: Writers = {
    failures: 0,
    start(tickets, ratePerSecond) {
      const tickMs = 20;
      let carry = 0;
      timer = setInterval(() => {
        carry += (ratePerSecond * tickMs) / 1000;
        const count = Math.floor(carry);
        carry -= count;
        if (count === 0 || inflight.size >= 8) return;
        const batch = Array.from({ length: count }, () => tickets[n++ % tickets.length]!);
        const done = pool
          .query("SELECT realtime.publish_ticket_event(t, 'chaos', jsonb_build_object('n', i)) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)", [batch])
          .catch(() => void (writers.failures += 1))
          .finally(() => inflight.delete(done));
        inflight.add(done);
      }, tickMs);
    },
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...inflight]);
    },
  };
  onCleanup("chaos writers", async () => {
    await writers.stop();
    await pool.end();
  });
  return writers;
}

export async function startChaos(options: ChaosOptions): Promise<Chaos> {
  const redis = await startRedisServer();
  let postgres: PostgresServer | undefined;
  let databaseUrl: string;
  if (options.privatePostgres) {
    // the replication source needs wal_level=logical
    postgres = await startPostgresServer(currentEventSource() === "replication" ? { flags: ["-c", "wal_level=logical"] } : {});
    databaseUrl = postgres.url;
    await migrate(databaseUrl, "ticket_updates", silentLogger);
  } else {
    databaseUrl = await createTestDatabase();
  }
  const pgProxy = options.proxiedPostgres?.length ? await startProxy(() => Number(new URL(databaseUrl).port)) : undefined;
  const prefix = randomPrefix();
  const gateways: Array<GatewayProcess | undefined> = [];
  const balancer = await startProxy(readyRoundRobin(() => gateways.filter((g): g is GatewayProcess => !!g && g.child.exitCode === null && g.child.signalCode === null).map((g) => g.port)));
  const clients: ChaosClient[] = [];
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on("error", () => undefined);
  onCleanup("chaos redis admin", () => admin.disconnect());
  onCleanup("chaos clients", () => clients.forEach((c) => c.close()));

  const envFor = (i: number) => {
    let url = databaseUrl;
    if (pgProxy && options.proxiedPostgres!.includes(i)) {
      const proxied = new URL(databaseUrl);
      proxied.port = String(pgProxy.port);
      url = proxied.toString();
    }
    return clusterEnv({
      mode: "classic",
      databaseUrl: url,
      prefix,
      redisUrl: redis.url,
      // clients here subscribe to many tickets at once: the per-socket event rate is not under test
      env: { INSTANCE_ID: `chaos${i}-${prefix.slice(-4)}`, LEADER_LEASE: "3s", SHUTDOWN_GRACE_MS: "3000", EVENT_RATE_PER_SOCKET: "0", ...options.env },
    });
  };

  const chaos: Chaos = {
    redis,
    postgres,
    databaseUrl,
    gateways,
    pgProxy,
    balancer,
    clients,
    async spawn(i) {
      const proc = await spawnGateway(envFor(i));
      gateways[i] = proc;
      return proc;
    },
    async leader(timeoutMs = 20_000) {
      let found = -1;
      await eventually(
        async () => {
          const flags = await Promise.all(
            gateways.map(async (g) => {
              if (!g || g.child.exitCode !== null || g.child.signalCode !== null) return 0;
              try {
                return sample(await scrape(g.metricsPort, 1000), "gateway_listener_leader") ?? 0;
              } catch {
                return 0;
              }
            }),
          );
          if (flags.filter((f) => f === 1).length !== 1) return false;
          found = flags.indexOf(1);
          return true;
        },
        "exactly one leader",
        timeoutMs,
        100,
      );
      return found;
    },
    async killSubscriber(i) {
      const id = envFor(i).INSTANCE_ID!;
      let killed = 0;
      for (const line of String(await admin.call("CLIENT", "LIST")).split("\n")) {
        if (!line.includes(`name=gateway-sub-${id} `)) continue;
        const addr = /addr=(\S+)/.exec(line)?.[1];
        if (addr) killed += Number(await admin.call("CLIENT", "KILL", "ADDR", addr).then(() => 1, () => 0));
      }
      return killed;
    },
    async client(url, tickets, userId = `user-${clients.length}`) {
      const auth = { token: await token({ sub: userId, tickets: ["*"] }) };
      const socket = io(url, { auth, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 1000, forceNew: true });
      const client: ChaosClient = {
        socket,
        userId,
        tickets,
        seqs: new Map(tickets.map((t) => [t, []])),
        start: new Map(),
        revoked: new Map(),
        lastAt: new Map(),
        close: () => {
          closed = true;
          socket.disconnect();
        },
      };
      // after close(), no retry may bring the socket back (it would keep the test process alive)
      let closed = false;
      const subscribeAll = () => {
        for (const ticketId of tickets) if (!client.revoked.has(ticketId)) subscribeOne(ticketId);
      };
      const subscribeOne = (ticketId: string) => {
        const list = client.seqs.get(ticketId)!;
        const sinceSeq = list.length > 0 ? list[list.length - 1] : undefined;
        socket.timeout(15_000).emit("ticket:subscribe", { ticketId, sinceSeq }, (error: Error | null, ack: { ok: boolean; missed?: TicketUpdate[] }) => {
          if (error || !ack.ok) {
            if (socket.connected) setTimeout(() => !closed && socket.connected && subscribeOne(ticketId), 200);
            return;
          }
          if (!client.start.has(ticketId)) client.start.set(ticketId, (ack as { seq?: number }).seq ?? 0);
          for (const update of ack.missed ?? []) list.push(update.seq!);
        });
      };
      socket.on("connect", subscribeAll);
      // a rejected handshake (SHUTTING_DOWN, SERVER_FULL) ends socket.io's own retries: the app retries
      socket.on("connect_error", () => setTimeout(() => !closed && !socket.connected && !socket.active && socket.connect(), 200));
      socket.on("ticket:update", (update: TicketUpdate) => {
        if (update.seq === null) return;
        client.seqs.get(update.ticketId)?.push(update.seq);
        client.lastAt.set(update.ticketId, Date.now());
      });
      socket.on("ticket:revoked", ({ ticketId }: { ticketId: string }) => client.revoked.set(ticketId, client.seqs.get(ticketId)?.length ?? 0));
      clients.push(client);
      await eventually(() => client.start.size === tickets.length, "the chaos client's subscriptions", 15_000);
      return client;
    },
    writers: startWriters(databaseUrl),
    async metric(name, labels = "") {
      let total = 0;
      for (const g of gateways) {
        if (!g || g.child.exitCode !== null || g.child.signalCode !== null) continue;
        try {
          total += sample(await scrape(g.metricsPort, 1000), name, labels) ?? 0;
        } catch {
          // an instance in the middle of dying
        }
      }
      return total;
    },
    async verify({ timeoutMs = 45_000, exclude } = {}) {
      const started = Date.now();
      await chaos.writers.stop();
      await waitSequenced(databaseUrl, timeoutMs);
      const heads = new Map(
        (await sql<{ ticket_id: string; last_seq: string }>(databaseUrl, "SELECT ticket_id, last_seq FROM realtime.ticket_heads")).map((r) => [r.ticket_id, Number(r.last_seq)]),
      );
      const expected = (client: ChaosClient, ticketId: string) => heads.get(ticketId) ?? 0;
      const pending = () =>
        clients.flatMap((c) => c.tickets.filter((t) => !exclude?.(c, t) && !c.revoked.has(t)).map((t) => [c, t] as const)).filter(([c, t]) => {
          const list = c.seqs.get(t)!;
          return (list[list.length - 1] ?? 0) < expected(c, t);
        });
      await eventually(() => pending().length === 0, "every client to hold every committed seq", timeoutMs, 50).catch((error: Error) => {
        const [c, t] = pending()[0]!;
        const list = c.seqs.get(t)!;
        throw new Error(`${error.message}: ${pending().length} (client, ticket) pairs behind, e.g. ${c.userId} on ${t} at ${list[list.length - 1] ?? 0} of ${expected(c, t)}`);
      });
      let deliveries = 0;
      for (const client of clients) {
        for (const ticketId of client.tickets) {
          if (exclude?.(client, ticketId) || client.revoked.has(ticketId)) continue;
          const list = client.seqs.get(ticketId)!;
          deliveries += list.length;
          const start = client.start.get(ticketId) ?? 0;
          const want = range(expected(client, ticketId)).slice(start);
          expect(list, `${client.userId} on ${ticketId}: exactly ${start + 1}..${expected(client, ticketId)}, once each, in order`).to.deep.equal(want);
        }
      }
      return {
        clients: clients.length,
        tickets: heads.size,
        events: [...heads.values()].reduce((a, b) => a + b, 0),
        deliveries,
        repaired: await chaos.metric("gateway_reconciled_events_total"),
        duplicatesDropped: await chaos.metric("gateway_delivery_duplicates_total"),
        msToComplete: Date.now() - started,
      };
    },
  };
  return chaos;
}

/** One line per scenario in the test output: the figures docs/delivery.md quotes. */
export function report(scenario: string, figures: object): void {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  process.stdout.write(`      chaos ${scenario}: ${text}\n`);
}
