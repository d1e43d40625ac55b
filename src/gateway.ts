/**
 * `createGateway(config)` → a handle `{ start, stop, io, metrics }`. Importing starts nothing;
 * `start()` opens every resource in order and registers its releaser; `stop()` drains, then
 * releases in reverse. `stop()` is memoized, so a second call (or SIGTERM) is harmless.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { createServer, type Server as HttpServer } from "node:http";
import { Server } from "socket.io";
import { createTokenVerifier, type TokenVerifier } from "./auth/jwt.js";
import { loadOrCreateDevSecret } from "./auth/dev-secret.js";
import type { GatewayConfig } from "./config.js";
import { openDatabase, type Database } from "./db/index.js";
import { drainSockets } from "./drain.js";
import { coerceError } from "./errors.js";
import { createHttpApp, createMetricsServer, SOCKET_IO_PATH, type HttpAppOptions, type ReadinessCheck } from "./http.js";
import { createDemoApp } from "./demo/routes.js";
import { ResourceStack, sleep } from "./lifecycle.js";
import { createLimits } from "./limits/index.js";
import { EngineAdmission } from "./limits/engine-admission.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createPresence } from "./presence/index.js";
import { createRedisClients, redisAdapter, type RedisClients } from "./redis.js";
import { createLiveness } from "./cluster/liveness.js";
import { createConnectionHandler } from "./socket/connection.js";
import type { SocketContext } from "./socket/context.js";
import type { GatewayServer } from "./io-types.js";
import { createDelivery, type Delivery } from "./delivery/index.js";
import { handshakeMiddleware } from "./socket/handshake.js";
import { evictLocal } from "./socket/eviction.js";
import { assertNotEvicted } from "./socket/eviction-rule.js";
import { setupObservability } from "./observability/index.js";
import { reportSkippedEvents } from "./observability/skipped-events.js";
import { watchPresence } from "./socket/subscriptions.js";
import { createSse, type Sse } from "./sse/index.js";
import { limitKey } from "./socket/client-ip.js";

export interface GatewayDeps {
  logger?: Logger;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly io: GatewayServer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** the bound public port (useful with PORT=0) */
  readonly port: number;
  /** the bound metrics port, or -1 when disabled */
  readonly metricsPort: number;
  /** the database, once started (undefined before) */
  readonly database: Database | undefined;
  /** the delivery pipeline, once started (undefined before) */
  readonly delivery: Delivery | undefined;
  /** the Redis clients in cluster mode, once started (read-only: tests observe pub/sub traffic) */
  readonly redis: RedisClients | undefined;
  start(): Promise<void>;
  /** drain and stop; `force` skips the drain */
  stop(reason?: string, options?: { force?: boolean }): Promise<void>;
  /** evict a user from a ticket room on every instance (see realtime.evict) */
  evict(ticketId: string, userId: string, reason?: string): void;
  [Symbol.asyncDispose](): Promise<void>;
}

async function listen(server: HttpServer, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Give Redis a moment at start so the first clients see a cluster; serve unready if it is down. */
async function waitForRedis(redis: RedisClients, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!redis.ready() && Date.now() < deadline) await sleep(50);
  return redis.ready();
}

export function createGateway(config: GatewayConfig, deps: GatewayDeps = {}): Gateway {
  const logger = deps.logger ?? createLogger(config.logLevel, { instanceId: config.instanceId });
  const metrics = createMetrics(config.instanceId);
  const stack = new ResourceStack();
  const checks = new Map<string, ReadinessCheck>();
  const httpServer = createServer();
  const io: GatewayServer = new Server(httpServer, {
    path: SOCKET_IO_PATH,
    serveClient: false,
    maxHttpBufferSize: config.maxPayloadBytes,
    perMessageDeflate: false,
    // a backup: EngineAdmission closes a session that has not joined after handshakeTimeoutMs
    connectTimeout: config.handshakeTimeoutMs + 1000,
    pingInterval: 25_000,
    pingTimeout: 20_000,
    cleanupEmptyChildNamespaces: true,
    cors: config.corsOrigins.length > 0 ? { origin: config.corsOrigins.includes("*") ? true : config.corsOrigins, credentials: true } : undefined,
    // every Engine.IO handshake (WebSocket or polling) is counted from here: limits/engine-admission.ts
    allowRequest: (req, callback) => {
      if (!admission) return callback("starting", false);
      admission.allowRequest(req, callback);
    },
  });
  let admission: EngineAdmission | undefined;
  let draining = false;
  let started = false;
  let port = -1;
  let metricsPort = -1;
  let database: Database | undefined;
  let delivery: Delivery | undefined;
  let redisClients: RedisClients | undefined;
  let stopPromise: Promise<void> | undefined;
  let ctx: SocketContext | undefined;
  let sse: Sse | undefined;

  async function start(): Promise<void> {
    if (started) throw new Error("gateway already started");
    started = true;
    try {
      await open();
    } catch (error) {
      await stack.close().catch(() => undefined);
      throw error;
    }
  }

  async function open(): Promise<void> {
    let redis: RedisClients | undefined;
    if (config.redisUrl) {
      redis = createRedisClients(config.redisUrl, logger, { cluster: config.redisCluster, instanceId: config.instanceId });
      redisClients = redis;
      const clients = redis;
      stack.defer("redis", () => clients.close());
      metrics.redisConnected.set(0);
      redis.onChange((ready) => metrics.redisConnected.set(ready ? 1 : 0));
      checks.set("redis", () => (clients.ready() ? undefined : "redis unreachable"));
      if (!(await waitForRedis(redis, 5000))) logger.warn({ dependency: "redis" }, "redis not reachable yet; serving unready");
      io.adapter(redisAdapter(config.redisAdapter, redis, config.redisPrefix));
      metrics.redisConnected.set(redis.ready() ? 1 : 0);
    } else {
      metrics.redisConnected.set(1);
    }
    // a session that joins another namespace (the admin UI) is off the handshake clock too
    io.on("new_namespace", (nsp) => nsp.on("connection", (socket) => admission?.joinedOther(socket.conn)));
    stack.defer("observability", setupObservability(io, config, metrics, logger, redis));

    database = await openDatabase({ config, logger, metrics });
    const db = database;
    stack.defer("database", () => db.close());
    checks.set("postgres", () => db.check());
    stack.defer("skipped-events report", reportSkippedEvents({ pool: db.pool, metrics, logger }));

    // one heartbeat for the whole instance: limits and presence forget a dead instance through it
    const liveness = redis && createLiveness({ client: redis.pub, prefix: config.redisPrefix, instanceId: config.instanceId, logger });
    if (liveness) stack.defer("liveness", () => liveness.close());
    const limits = createLimits({ config, redis, logger, metrics, liveness });
    stack.defer("limits", () => limits.close());
    const engineAdmission = new EngineAdmission({
      config,
      limiter: limits.connections,
      metrics,
      logger,
      isDraining: () => draining,
      // SSE streams count against MAX_CONNECTIONS too
      otherHeld: () => sse?.count() ?? 0,
      precheck: (req) => {
        // browsers send Origin on WebSocket upgrades too, and CORS does not cover them
        const origin = req.headers.origin;
        const allowed = config.corsOrigins.length === 0 || config.corsOrigins.includes("*") || !origin || config.corsOrigins.includes(origin);
        return allowed ? undefined : "origin not allowed";
      },
    });
    io.engine.on("connection", engineAdmission.onConnection);
    io.engine.on("connection_error", engineAdmission.onConnectionError);
    admission = engineAdmission;
    const presence = createPresence({ config, redis, logger, liveness });
    stack.defer("presence", () => presence.close());
    const jwtConfig =
      config.jwt.secret || config.jwt.publicKey || config.jwt.jwksUrl ? config.jwt : { ...config.jwt, secret: await loadOrCreateDevSecret(config.dataDir) };
    const verifier: TokenVerifier = createTokenVerifier(jwtConfig);
    const pipeline = createDelivery({
      config,
      io,
      pool: db.pool,
      connectionString: db.url,
      eventSource: db.eventSource.source,
      redis,
      logger,
      metrics,
      evict: ({ ticketId, userId, evictedAt }) => evictHere(ticketId, userId, "evicted", evictedAt),
    });
    delivery = pipeline;
    const context: SocketContext = {
      config,
      io,
      logger,
      metrics,
      verifier,
      delivery: pipeline,
      evictions: db.evictions,
      presence,
      admission: engineAdmission,
      eventLimiter: limits.events,
      isDraining: () => draining,
    };
    ctx = context;
    const streams = createSse({
      config,
      logger,
      metrics,
      verifier,
      delivery: pipeline,
      connectionLimiter: limits.connections,
      otherConnections: () => engineAdmission.heldCount,
      limitKey: (ip) => limitKey(ip, config.ipv6PrefixLength),
      assertNotEvicted: (claims, ticketId) => assertNotEvicted(context, claims, ticketId),
      isDraining: () => draining,
    });
    sse = streams;
    // an eviction reaches this instance's sockets and its SSE streams
    const evictHere = (ticketId: string, userId: string, reason: string, evictedAt?: number) => {
      void evictLocal(context, ticketId, userId, reason, evictedAt);
      streams.evict(ticketId, userId, reason, evictedAt);
    };
    watchPresence(context);
    io.use(handshakeMiddleware(context));
    io.on("connection", createConnectionHandler(context));
    io.on("ticket:evict", (ticketId, userId, reason) => evictHere(ticketId, userId, reason));

    const httpOptions: HttpAppOptions = { sse: streams.handler };
    if (config.demoUi) {
      const demo = createDemoApp({ databaseUrl: db.url, secret: jwtConfig.secret, verifier, issuer: config.jwt.issuer, audience: config.jwt.audience, logger });
      stack.defer("demo", () => demo.close());
      httpOptions.demo = demo;
    }
    const app = createHttpApp(checks, () => draining, httpOptions);
    // engine.io answers its own path on this server (long-polling); if express answered it too (a
    // 404), the client would get two responses and the process would crash on the second
    httpServer.on("request", (req, res) => {
      if (!req.url?.startsWith(`${SOCKET_IO_PATH}/`)) app(req, res);
    });
    port = await listen(httpServer, config.port, config.host);
    stack.defer("socket.io", async () => {
      await io.close();
      httpServer.closeAllConnections();
    });
    // runs before socket.io's close above (last in, first out): the server does not wait on open streams
    stack.defer("sse", () => streams.close());

    pipeline.start();
    stack.defer("delivery", () => pipeline.stop());
    // an instance that cannot repair its rooms from the outbox should not get new clients
    checks.set("delivery", () => (pipeline.healthy() ? undefined : "delivery reconciliation failing"));
    if (redis) redis.onChange((ready) => ready && pipeline.poke());

    if (config.metricsPort >= 0) {
      const metricsServer = createMetricsServer(metrics.registry);
      metricsPort = await listen(metricsServer, config.metricsPort, config.host);
      stack.defer("metrics server", async () => {
        metricsServer.closeAllConnections();
        await new Promise((resolve) => metricsServer.close(resolve));
      });
    }
    logger.info(
      { port, metricsPort, mode: redis ? `cluster (redis ${config.redisAdapter} adapter${config.redisCluster ? " on a Redis Cluster" : ""})` : "single node (in-memory adapter, limiter and presence)" },
      redis ? "gateway started in cluster mode" : "gateway started as a single node: no REDIS_URL, in-memory adapter and limits",
    );
  }

  function evict(ticketId: string, userId: string, reason = "evicted"): void {
    io.serverSideEmit("ticket:evict", ticketId, userId, reason);
    if (ctx) void evictLocal(ctx, ticketId, userId, reason);
    sse?.evict(ticketId, userId, reason);
  }

  function stop(reason = "stop", options: { force?: boolean } = {}): Promise<void> {
    stopPromise ??= (async () => {
      draining = true;
      if (!started) return;
      const grace = config.shutdownGraceMs;
      logger.info({ reason, graceMs: grace, connections: io.of("/").sockets.size, sseStreams: sse?.count() ?? 0 }, "draining");
      if (!options.force) {
        const window = { spreadMs: grace * 0.5, deadlineMs: grace * 0.8 };
        const [left, streamsLeft] = await Promise.all([
          io.of("/").sockets.size > 0 ? drainSockets(io, window) : 0,
          sse && sse.count() > 0 ? sse.drain(window) : 0,
        ]);
        if (left + streamsLeft > 0) logger.warn({ left, sseStreams: streamsLeft }, "drain deadline reached; closing the remaining connections");
      }
      await stack.close((name, error) => logger.error({ resource: name, err: coerceError(error) }, "release failed"));
      logger.info({ reason }, "stopped");
    })();
    return stopPromise;
  }

  return {
    config,
    io,
    metrics,
    logger,
    get port() {
      return port;
    },
    get metricsPort() {
      return metricsPort;
    },
    get database() {
      return database;
    },
    get delivery() {
      return delivery;
    },
    get redis() {
      return redisClients;
    },
    start,
    stop,
    evict,
    [Symbol.asyncDispose]: () => stop("dispose", { force: true }),
  };
}
