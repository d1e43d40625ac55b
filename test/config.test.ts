/**
 * Configuration: every invalid variable fails `loadConfig` with a ConfigError naming it, and the
 * real process stops with exit code 78 (EX_CONFIG) and one stderr line naming it.
 */
import { generateKeyPairSync } from "node:crypto";
import { expect } from "chai";
import { ConfigError, loadConfig } from "../src/config.js";
import { spawnGateway, waitExit } from "./support/process.js";

const BASE = { DATABASE_URL: "postgres://gateway:s3cret@localhost:5432/helpdesk", JWT_SECRET: "0123456789abcdef0123" };

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

function pem(type: "rsa" | "ec" | "ed25519", namedCurve = "P-256"): string {
  const { publicKey } =
    type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : type === "ec" ? generateKeyPairSync("ec", { namedCurve }) : generateKeyPairSync("ed25519");
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** [variable named in the error, the environment (over BASE) that is wrong] */
const invalid: Array<[string, Record<string, string>]> = [
  ["PORT", { PORT: "http" }],
  ["EVENT_SOURCE", { EVENT_SOURCE: "logical" }],
  ["REPLICATION_SLOT", { REPLICATION_SLOT: "Bad-Name" }],
  ["PORT", { PORT: "70000" }],
  ["PORT", { PORT: "-1" }],
  ["PORT", { PORT: "80.5" }],
  ["METRICS_PORT", { METRICS_PORT: "0x10" }],
  ["METRICS_PORT", { PORT: "4000", METRICS_PORT: "4000" }],
  ["METRICS_PORT", { PORT: "9464" }],
  ["MAX_CONNECTIONS_PER_IP", { MAX_CONNECTIONS_PER_IP: "ten" }],
  ["MAX_CONNECTIONS", { MAX_CONNECTIONS: "1e4" }],
  ["MAX_SUBSCRIPTIONS_PER_SOCKET", { MAX_SUBSCRIPTIONS_PER_SOCKET: "-5" }],
  ["MAX_PAYLOAD_BYTES", { MAX_PAYLOAD_BYTES: "10" }],
  ["TRUST_PROXY", { TRUST_PROXY: "true" }],
  ["SHUTDOWN_GRACE_MS", { SHUTDOWN_GRACE_MS: "soon" }],
  ["SHUTDOWN_GRACE_MS", { SHUTDOWN_GRACE_MS: "-1s" }],
  ["EVENT_RETENTION", { EVENT_RETENTION: "7 days" }],
  ["EVENT_RETENTION", { EVENT_RETENTION: "10ms" }],
  ["CONNECTION_RATE_PER_IP", { CONNECTION_RATE_PER_IP: "30" }],
  ["CONNECTION_RATE_PER_IP", { CONNECTION_RATE_PER_IP: "x/60s" }],
  ["CONNECTION_RATE_PER_IP", { CONNECTION_RATE_PER_IP: "30/0s" }],
  ["EVENT_RATE_PER_SOCKET", { EVENT_RATE_PER_SOCKET: "20/1s/5" }],
  ["EVENT_RATE_PER_SOCKET", { EVENT_RATE_PER_SOCKET: "20/second" }],
  ["REDIS_URL", { REDIS_URL: "localhost:6379" }],
  ["REDIS_URL", { REDIS_URL: "http://localhost:6379" }],
  ["REDIS_ADAPTER", { REDIS_ADAPTER: "cluster" }],
  ["REDIS_ADAPTER", { REDIS_ADAPTER: "Sharded" }],
  ["REDIS_CLUSTER", { REDIS_CLUSTER: "maybe" }],
  ["REDIS_URL", { REDIS_URL: "redis://a:6379,redis://b:6379" }],
  ["REDIS_URL", { REDIS_CLUSTER: "true" }],
  ["REDIS_URL", { REDIS_CLUSTER: "true", REDIS_URL: "redis://a:6379,http://b:6379" }],
  ["REDIS_URL", { REDIS_CLUSTER: "true", REDIS_URL: "redis://a:6379/2" }],
  ["REDIS_ADAPTER", { REDIS_CLUSTER: "true", REDIS_URL: "redis://a:6379", REDIS_ADAPTER: "classic" }],
  ["REDIS_PREFIX", { REDIS_PREFIX: "has space" }],
  ["DATABASE_URL", { DATABASE_URL: "mysql://gateway:s3cret@localhost/helpdesk" }],
  ["DATABASE_URL", { DATABASE_URL: "not a url" }],
  ["PG_CHANNEL", { PG_CHANNEL: "Ticket-Updates" }],
  ["PG_CHANNEL", { PG_CHANNEL: "x".repeat(64) }],
  ["JWT_SECRET", { JWT_SECRET: "short" }],
  ["JWT_SECRET", { JWT_PUBLIC_KEY: pem("rsa") }],
  ["JWT_SECRET", { JWT_JWKS_URL: "https://id.example.com/jwks.json" }],
  ["JWT_SECRET", { JWT_SECRET: "" }],
  ["JWT_PUBLIC_KEY", { JWT_SECRET: "", JWT_PUBLIC_KEY: "not a pem" }],
  ["JWT_PUBLIC_KEY", { JWT_SECRET: "", JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----" }],
  ["JWT_PUBLIC_KEY", { JWT_SECRET: "", JWT_PUBLIC_KEY: pem("ec", "secp256k1") }],
  ["JWT_JWKS_URL", { JWT_SECRET: "", JWT_JWKS_URL: "ftp://id.example.com/jwks.json" }],
  ["CORS_ORIGINS", { CORS_ORIGINS: "app.example.com" }],
  ["CORS_ORIGINS", { CORS_ORIGINS: "https://app.example.com,https://app.example.com/path" }],
  ["LOG_LEVEL", { LOG_LEVEL: "verbose" }],
  ["MIGRATE_ON_START", { MIGRATE_ON_START: "maybe" }],
  ["DEMO_UI", { DEMO_UI: "2" }],
  ["HANDSHAKE_TIMEOUT_MS", { HANDSHAKE_TIMEOUT_MS: "soon" }],
  ["HANDSHAKE_TIMEOUT_MS", { HANDSHAKE_TIMEOUT_MS: "50" }],
  ["MAX_BUFFERED_BYTES_PER_SOCKET", { MAX_BUFFERED_BYTES_PER_SOCKET: "1MB" }],
  ["MAX_BUFFERED_BYTES_PER_SOCKET", { MAX_BUFFERED_BYTES_PER_SOCKET: "-1" }],
  ["IPV6_PREFIX_LENGTH", { IPV6_PREFIX_LENGTH: "0" }],
  ["IPV6_PREFIX_LENGTH", { IPV6_PREFIX_LENGTH: "129" }],
  ["IPV6_PREFIX_LENGTH", { IPV6_PREFIX_LENGTH: "/64" }],
  ["SSE_HEARTBEAT_INTERVAL", { SSE_HEARTBEAT_INTERVAL: "50ms" }],
  ["SSE_HEARTBEAT_INTERVAL", { SSE_HEARTBEAT_INTERVAL: "often" }],
];

describe("configuration", () => {
  it("accepts the defaults and parses every form it documents", () => {
    const config = loadConfig({
      ...BASE,
      PORT: "8080",
      CONNECTION_RATE_PER_IP: "5/10s",
      EVENT_RATE_PER_SOCKET: "0",
      EVENT_RETENTION: "36h",
      SHUTDOWN_GRACE_MS: "3000",
      CORS_ORIGINS: "https://a.example.com, http://localhost:5173",
      REDIS_URL: "redis://:pw@localhost:6379/2",
      REDIS_ADAPTER: "sharded",
      SSE_HEARTBEAT_INTERVAL: "30s",
    });
    expect(config.sseHeartbeatIntervalMs).to.equal(30_000);
    expect(loadConfig(BASE)).to.include({ eventSource: "auto", replicationSlot: "realtime_gateway" });
    expect(loadConfig({ ...BASE, EVENT_SOURCE: "replication", REPLICATION_SLOT: "rg_2" })).to.include({ eventSource: "replication", replicationSlot: "rg_2" });
    expect(loadConfig({}).sseHeartbeatIntervalMs, "SSE_HEARTBEAT_INTERVAL defaults to 15s").to.equal(15_000);
    expect(config).to.include({ port: 8080, metricsPort: 9464, redisAdapter: "sharded", shutdownGraceMs: 3000, eventRetentionMs: 36 * 3_600_000 });
    expect(config.connectionRatePerIp).to.deep.equal({ points: 5, durationMs: 10_000 });
    expect(config.eventRatePerSocket.points).to.equal(0);
    expect(config.corsOrigins).to.deep.equal(["https://a.example.com", "http://localhost:5173"]);
    expect(loadConfig({})).to.include({ port: 3000, redisAdapter: "classic", migrateOnStart: true, demoUi: true, logLevel: "info" });
    // the hardening limits (docs/security.md)
    expect(loadConfig(BASE)).to.include({ handshakeTimeoutMs: 5000, maxBufferedBytesPerSocket: 1_048_576, ipv6PrefixLength: 64 });
    expect(loadConfig({ ...BASE, HANDSHAKE_TIMEOUT_MS: "2s", MAX_BUFFERED_BYTES_PER_SOCKET: "0", IPV6_PREFIX_LENGTH: "48" })).to.include({
      handshakeTimeoutMs: 2000,
      maxBufferedBytesPerSocket: 0,
      ipv6PrefixLength: 48,
    });
    for (const key of [pem("rsa"), pem("ec", "P-256"), pem("ec", "P-384"), pem("ed25519")]) {
      expect(loadConfig({ ...BASE, JWT_SECRET: "", JWT_PUBLIC_KEY: key }).jwt.publicKey).to.equal(key.trim());
    }
  });

  for (const [variable, env] of invalid) {
    it(`rejects ${variable}=${JSON.stringify(Object.values(env).join(" ").slice(0, 40))} naming ${variable}`, () => {
      const error = configError({ ...BASE, ...env });
      expect(error.variable).to.equal(variable);
      expect(error.message.startsWith(`${variable} `), error.message).to.equal(true);
      expect(error.message).not.to.include("\n");
    });
  }

  it("requires a JWT key source when DATABASE_URL is set, and names the variable", () => {
    const error = configError({ DATABASE_URL: BASE.DATABASE_URL });
    expect(error.message).to.match(/^JWT_SECRET .*JWT_PUBLIC_KEY.*JWT_JWKS_URL.*DATABASE_URL/);
  });

  it("REDIS_CLUSTER=true takes comma-separated seed nodes and defaults to the sharded adapter", () => {
    const config = loadConfig({ ...BASE, REDIS_CLUSTER: "true", REDIS_URL: "redis://:pw@10.0.0.1:6379, redis://:pw@10.0.0.2:6379,redis://:pw@10.0.0.3:6379/0" });
    expect(config).to.include({ redisCluster: true, redisAdapter: "sharded", redisUrl: "redis://:pw@10.0.0.1:6379,redis://:pw@10.0.0.2:6379,redis://:pw@10.0.0.3:6379/0" });
    expect(loadConfig({ ...BASE, REDIS_URL: "redis://localhost:6379" })).to.include({ redisCluster: false, redisAdapter: "classic" });
  });

  it("never echoes a password from a URL", () => {
    for (const DATABASE_URL of ["mysql://gateway:s3cret@localhost/db", "postgres://gateway:s3cret@@host:bad/db", "mysql://gateway:s3c@ret/x@localhost/db"]) {
      const error = configError({ ...BASE, DATABASE_URL });
      expect(error.message, error.message).not.to.match(/s3c|ret/);
    }
    const redis = configError({ ...BASE, REDIS_URL: "http://:s3cret@localhost:6379" });
    expect(redis.message).not.to.include("s3cret");
  });

  describe("as a process", () => {
    const base = { ...BASE, PORT: "0", METRICS_PORT: "-1", HOST: "127.0.0.1" };

    for (const [variable, env] of [
      ["REDIS_ADAPTER", { REDIS_ADAPTER: "cluster" }],
      ["REDIS_ADAPTER", { REDIS_CLUSTER: "true", REDIS_URL: "redis://127.0.0.1:1", REDIS_ADAPTER: "classic" }],
      ["SHUTDOWN_GRACE_MS", { SHUTDOWN_GRACE_MS: "soon" }],
      ["JWT_SECRET", { JWT_SECRET: "" }],
    ] as Array<[string, Record<string, string>]>) {
      it(`exits 78 with one stderr line naming ${variable}`, async () => {
        const proc = await spawnGateway({ ...base, ...env }, { waitForStart: false });
        expect(await waitExit(proc)).to.equal(78);
        const lines = proc.output.filter((line) => line.trim() !== "");
        expect(lines, lines.join("\n")).to.have.length(1);
        expect(lines[0]).to.match(new RegExp(`^realtime-gateway: invalid configuration: ${variable} `));
      });
    }

    it("exits 78 on a bad DATABASE_URL without printing its password", async () => {
      const proc = await spawnGateway({ ...base, DATABASE_URL: "mysql://gateway:hunter2@db.internal:3306/helpdesk" }, { waitForStart: false });
      expect(await waitExit(proc)).to.equal(78);
      const text = proc.output.join("\n");
      expect(text).to.match(/^realtime-gateway: invalid configuration: DATABASE_URL /);
      expect(text).to.include("gateway:***@");
      expect(text).not.to.include("hunter2");
    });
  });
});
