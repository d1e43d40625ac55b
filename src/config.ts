/**
 * The one place where configuration is typed, defaulted and validated.
 *
 * `loadConfig(env)` turns environment variables (see SPEC.md) into a `GatewayConfig` or throws a
 * `ConfigError` naming the variable and the expected form. Nothing else reads `process.env`.
 */
import { createPublicKey, randomUUID, type KeyObject } from "node:crypto";
import { hostname } from "node:os";

export interface RateLimit {
  /** events allowed per window; 0 disables the limit */
  points: number;
  durationMs: number;
}

export interface JwtConfig {
  /** HS256 shared secret */
  secret?: string;
  /** PEM public key (RS256 or ES256) */
  publicKey?: string;
  /** JWKS endpoint */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
}

export interface GatewayConfig {
  /** @default 3000 */
  port: number;
  /** @default "0.0.0.0" */
  host: string;
  /** Prometheus port; 0 picks a free one (tests), -1 disables. @default 9464 */
  metricsPort: number;
  /** unset: single node (in-memory adapter, limiter, presence). With `redisCluster`, comma-separated seed nodes */
  redisUrl?: string;
  /** REDIS_CLUSTER: `redisUrl` lists the seed nodes of a Redis Cluster. @default false */
  redisCluster: boolean;
  /** @default "classic" */
  redisAdapter: "classic" | "sharded";
  /** prefix of every Redis key and channel, so several clusters (or tests) share one Redis. @default "rg" */
  redisPrefix: string;
  /** unset: embedded PostgreSQL under `dataDir` */
  databaseUrl?: string;
  /** @default "ticket_updates" */
  pgChannel: string;
  jwt: JwtConfig;
  /** @default 10 */
  maxConnectionsPerIp: number;
  /** @default 30/60s */
  connectionRatePerIp: RateLimit;
  /** @default 10000 */
  maxConnections: number;
  /** an Engine.IO session that has not joined the namespace after this long is closed, freeing its slot. @default 5000 */
  handshakeTimeoutMs: number;
  /** unsent output (engine.io write buffer + WebSocket bufferedAmount) beyond which a socket is a slow consumer; 0 disables. @default 1048576 */
  maxBufferedBytesPerSocket: number;
  /** IPv6 clients are counted per prefix of this length (one customer usually gets a /64). @default 64 */
  ipv6PrefixLength: number;
  /** @default 20/1s */
  eventRatePerSocket: RateLimit;
  /** @default 100 */
  maxSubscriptionsPerSocket: number;
  /** @default 16384 */
  maxPayloadBytes: number;
  /** proxy hops allowed to set X-Forwarded-For. @default 0 */
  trustProxy: number;
  /** @default [] */
  corsOrigins: string[];
  /** @default 7 days */
  eventRetentionMs: number;
  /**
   * How the leader reads committed events (EVENT_SOURCE). `replication`: the outbox's inserts
   * through PostgreSQL logical replication (a publication and a `pgoutput` slot). `queue`: the
   * leader polls the unsequenced rows every QUEUE_POLL_INTERVAL. `auto`: replication where the
   * server and role allow it, else queue (resolved and logged at start, src/db/event-source.ts).
   * @default "auto"
   */
  eventSource: EventSourceSetting;
  /** the logical replication slot and publication name reserved for EVENT_SOURCE=replication. @default "realtime_gateway" */
  replicationSlot: string;
  /** how often the leader probes the outbox for committed, unsequenced events (QUEUE_POLL_INTERVAL). @default 10 */
  queuePollMs: number;
  /** how often each instance checks its rooms against the outbox heads (RECONCILE_INTERVAL). @default 2000 */
  reconcileIntervalMs: number;
  /** a leader that has not renewed its lease for this long is ended by a standby (LEADER_LEASE). @default 5000 */
  leaderLeaseMs: number;
  /** @default 20000 */
  shutdownGraceMs: number;
  /** how often an idle SSE stream gets a heartbeat comment, so proxies keep it open (SSE_HEARTBEAT_INTERVAL). @default 15000 */
  sseHeartbeatIntervalMs: number;
  /** @default "info" */
  logLevel: string;
  /** @default ".data" */
  dataDir: string;
  /** @default true in embedded mode */
  migrateOnStart: boolean;
  /** @default true in embedded mode */
  demoUi: boolean;
  /** unset: admin UI off */
  adminUiPassword?: string;
  /** identifies this process in logs, metrics and Redis. @default HOSTNAME-random */
  instanceId: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    expected: string,
    got?: string,
  ) {
    super(`${variable} ${expected}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "250ms", "60s", "5m", "1h", "7d", or a bare number of milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * DURATION_UNITS[match[2] ?? "ms"]!;
  return Number.isFinite(value) ? Math.round(value) : undefined;
}

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(name, `must be an integer between ${min} and ${max}`, raw);
  }
  return value;
}

function duration(env: Env, name: string, fallback: number, min = 0): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = parseDuration(raw);
  if (value === undefined || value < min) {
    throw new ConfigError(name, `must be a duration like 500ms, 60s, 5m, 1h or 7d${min ? ` of at least ${min}ms` : ""}`, raw);
  }
  return value;
}

function rate(env: Env, name: string, fallback: RateLimit): RateLimit {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (raw === "0") return { points: 0, durationMs: fallback.durationMs };
  const [points, window, ...rest] = raw.split("/");
  const durationMs = window === undefined ? undefined : parseDuration(window);
  if (!points || !/^\d+$/.test(points) || rest.length > 0 || durationMs === undefined || durationMs < 1) {
    throw new ConfigError(name, "must be COUNT/WINDOW like 30/60s, or 0 to disable", raw);
  }
  return { points: Number(points), durationMs };
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ConfigError(name, "must be true or false", raw);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be a URL (${protocols.join(", ")})`, redact(raw));
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must be a URL with scheme ${protocols.join(" or ")}`, redact(raw));
  }
  return raw;
}

/**
 * REDIS_URL: one URL, or with REDIS_CLUSTER=true the seed nodes of a Redis Cluster, comma-separated
 * (each a redis:// or rediss:// URL with no database number: a cluster has only database 0).
 */
function redisUrl(env: Env, cluster: boolean): string | undefined {
  const raw = read(env, "REDIS_URL");
  if (raw === undefined) return undefined;
  if (!cluster) {
    if (raw.includes(",")) throw new ConfigError("REDIS_URL", "lists several nodes: set REDIS_CLUSTER=true for a Redis Cluster, or give one URL", redact(raw));
    return url(env, "REDIS_URL", ["redis:", "rediss:"]);
  }
  const seeds = raw.split(",").map((seed) => seed.trim());
  for (const seed of seeds) {
    const checked = url({ REDIS_URL: seed }, "REDIS_URL", ["redis:", "rediss:"])!;
    const db = new URL(checked).pathname.replace(/^\//, "");
    if (db !== "" && db !== "0") throw new ConfigError("REDIS_URL", "must not select a database with REDIS_CLUSTER=true (a Redis Cluster has only database 0)", redact(seed));
  }
  return seeds.join(",");
}

/** Never echo a password back in an error line (up to the last "@": a password may hold "@" or "/"). */
function redact(raw: string): string {
  return raw.replace(/\/\/([^:/@]*):.*@/, "//$1:***@");
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!values.includes(raw as T)) throw new ConfigError(name, `must be one of ${values.join(", ")}`, raw);
  return raw as T;
}

/** Parse the PEM now: a key that only fails at the first handshake would fail every client instead. */
function checkPublicKey(pem: string): void {
  const expected = "must be a PEM public key (-----BEGIN PUBLIC KEY-----) of type RSA, EC P-256/P-384/P-521 or Ed25519";
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) throw new ConfigError("JWT_PUBLIC_KEY", expected);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new ConfigError("JWT_PUBLIC_KEY", `${expected}; it could not be parsed`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const supported = key.asymmetricKeyType === "rsa" || key.asymmetricKeyType === "ed25519" ||
    (key.asymmetricKeyType === "ec" && ["prime256v1", "secp384r1", "secp521r1"].includes(curve ?? ""));
  if (!supported) throw new ConfigError("JWT_PUBLIC_KEY", expected, `${key.asymmetricKeyType ?? "unknown"}${curve ? ` ${curve}` : ""}`);
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export interface LoadOptions {
  /** false for commands that never verify tokens (migrate) */
  requireJwt?: boolean;
}

export function loadConfig(env: Env = {}, options: LoadOptions = {}): GatewayConfig {
  const databaseUrl = url(env, "DATABASE_URL", ["postgres:", "postgresql:"]);
  const embedded = databaseUrl === undefined;
  const jwt: JwtConfig = {
    secret: read(env, "JWT_SECRET"),
    publicKey: read(env, "JWT_PUBLIC_KEY")?.replace(/\\n/g, "\n"),
    jwksUrl: url(env, "JWT_JWKS_URL", ["http:", "https:"]),
    issuer: read(env, "JWT_ISSUER"),
    audience: read(env, "JWT_AUDIENCE"),
  };
  const keySources = [jwt.secret, jwt.publicKey, jwt.jwksUrl].filter((v) => v !== undefined).length;
  if (keySources > 1) throw new ConfigError("JWT_SECRET", "must not be combined with JWT_PUBLIC_KEY or JWT_JWKS_URL: set exactly one");
  if (keySources === 0 && !embedded && options.requireJwt !== false) {
    throw new ConfigError("JWT_SECRET", "(or JWT_PUBLIC_KEY or JWT_JWKS_URL) is required when DATABASE_URL is set");
  }
  if (jwt.secret !== undefined && jwt.secret.length < 16) {
    throw new ConfigError("JWT_SECRET", "must be at least 16 characters");
  }
  if (jwt.publicKey !== undefined) checkPublicKey(jwt.publicKey);
  const channel = read(env, "PG_CHANNEL") ?? "ticket_updates";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) {
    throw new ConfigError("PG_CHANNEL", "must be a lower-case SQL identifier (letters, digits, _)", channel);
  }
  const prefix = read(env, "REDIS_PREFIX") ?? "rg";
  if (!/^[A-Za-z0-9_:.-]{1,64}$/.test(prefix)) throw new ConfigError("REDIS_PREFIX", "must be 1-64 of A-Z a-z 0-9 _ : . -", prefix);
  const cors = (read(env, "CORS_ORIGINS") ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  for (const origin of cors) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError("CORS_ORIGINS", "must be comma-separated origins like https://app.example.com", origin);
    }
  }
  const redisCluster = boolean(env, "REDIS_CLUSTER", false);
  const redisAdapter = oneOf(env, "REDIS_ADAPTER", ["classic", "sharded"] as const, redisCluster ? "sharded" : "classic");
  if (redisCluster && redisAdapter === "classic") {
    // measured (docs/redis-cluster.md): classic PUBLISH over a cluster reorders a ticket's seqs and
    // reaches every node of the cluster through its bus, so it neither keeps order nor scales
    throw new ConfigError("REDIS_ADAPTER", "must be sharded with REDIS_CLUSTER=true (the classic adapter reorders a ticket's updates on a Redis Cluster)", redisAdapter);
  }
  if (redisCluster && read(env, "REDIS_URL") === undefined) throw new ConfigError("REDIS_URL", "must list the seed nodes of the Redis Cluster when REDIS_CLUSTER=true");
  const port = integer(env, "PORT", 3000, 0, 65535);
  const metricsPort = integer(env, "METRICS_PORT", 9464, -1, 65535);
  if (metricsPort === port && port !== 0) throw new ConfigError("METRICS_PORT", "must differ from PORT", String(metricsPort));
  return {
    port,
    host: read(env, "HOST") ?? "0.0.0.0",
    metricsPort,
    redisUrl: redisUrl(env, redisCluster),
    redisCluster,
    redisAdapter,
    redisPrefix: prefix,
    databaseUrl,
    pgChannel: channel,
    jwt,
    maxConnectionsPerIp: integer(env, "MAX_CONNECTIONS_PER_IP", 10),
    connectionRatePerIp: rate(env, "CONNECTION_RATE_PER_IP", { points: 30, durationMs: 60_000 }),
    maxConnections: integer(env, "MAX_CONNECTIONS", 10_000),
    handshakeTimeoutMs: duration(env, "HANDSHAKE_TIMEOUT_MS", 5_000, 100),
    maxBufferedBytesPerSocket: integer(env, "MAX_BUFFERED_BYTES_PER_SOCKET", 1_048_576),
    ipv6PrefixLength: integer(env, "IPV6_PREFIX_LENGTH", 64, 1, 128),
    eventRatePerSocket: rate(env, "EVENT_RATE_PER_SOCKET", { points: 20, durationMs: 1_000 }),
    maxSubscriptionsPerSocket: integer(env, "MAX_SUBSCRIPTIONS_PER_SOCKET", 100),
    maxPayloadBytes: integer(env, "MAX_PAYLOAD_BYTES", 16_384, 256, 100 * 1024 * 1024),
    trustProxy: integer(env, "TRUST_PROXY", 0, 0, 32),
    corsOrigins: cors,
    eventRetentionMs: duration(env, "EVENT_RETENTION", 7 * 86_400_000, 1000),
    eventSource: eventSource(env),
    replicationSlot: identifier(env, "REPLICATION_SLOT", "realtime_gateway"),
    queuePollMs: duration(env, "QUEUE_POLL_INTERVAL", 10, 1),
    reconcileIntervalMs: duration(env, "RECONCILE_INTERVAL", 2000, 100),
    leaderLeaseMs: duration(env, "LEADER_LEASE", 5000, 1000),
    shutdownGraceMs: duration(env, "SHUTDOWN_GRACE_MS", 20_000),
    sseHeartbeatIntervalMs: duration(env, "SSE_HEARTBEAT_INTERVAL", 15_000, 100),
    logLevel: oneOf(env, "LOG_LEVEL", LOG_LEVELS, "info"),
    dataDir: read(env, "DATA_DIR") ?? ".data",
    migrateOnStart: boolean(env, "MIGRATE_ON_START", embedded),
    demoUi: boolean(env, "DEMO_UI", embedded),
    adminUiPassword: read(env, "ADMIN_UI_PASSWORD"),
    instanceId: read(env, "INSTANCE_ID") ?? `${read(env, "HOSTNAME") ?? hostname()}-${randomUUID().slice(0, 8)}`,
  };
}

function eventSource(env: Env): EventSourceSetting {
  return oneOf(env, "EVENT_SOURCE", ["auto", "queue", "replication"] as const, "auto");
}

/** EVENT_SOURCE as configured; `auto` is resolved against the server at start. */
export type EventSourceSetting = "auto" | EventSource;
/** How the leader reads committed events. */
export type EventSource = "queue" | "replication";

/** A PostgreSQL identifier usable unquoted: lower-case letters, digits and _, at most 63 bytes. */
function identifier(env: Env, name: string, fallback: string): string {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(raw)) throw new ConfigError(name, "must be 1-63 characters of a-z, 0-9 and _, not starting with a digit", raw);
  return raw;
}

/** Every variable `loadConfig` reads: the Helm chart and the docs are checked against this list. */
export const CONFIG_VARIABLES = [
  "PORT", "HOST", "METRICS_PORT", "REDIS_URL", "REDIS_CLUSTER", "REDIS_ADAPTER", "REDIS_PREFIX", "DATABASE_URL", "PG_CHANNEL",
  "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "MAX_CONNECTIONS_PER_IP",
  "CONNECTION_RATE_PER_IP", "MAX_CONNECTIONS", "EVENT_RATE_PER_SOCKET", "MAX_SUBSCRIPTIONS_PER_SOCKET",
  "MAX_PAYLOAD_BYTES", "TRUST_PROXY", "CORS_ORIGINS", "EVENT_RETENTION", "SHUTDOWN_GRACE_MS", "LOG_LEVEL",
  "DATA_DIR", "MIGRATE_ON_START", "DEMO_UI", "ADMIN_UI_PASSWORD", "INSTANCE_ID", "HOSTNAME",
  "EVENT_SOURCE", "REPLICATION_SLOT", "QUEUE_POLL_INTERVAL", "RECONCILE_INTERVAL", "LEADER_LEASE",
  "HANDSHAKE_TIMEOUT_MS", "MAX_BUFFERED_BYTES_PER_SOCKET", "IPV6_PREFIX_LENGTH",
  "SSE_HEARTBEAT_INTERVAL",
] as const;
