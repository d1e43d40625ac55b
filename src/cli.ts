#!/usr/bin/env node
/**
 * `realtime-gateway [serve|migrate|token|bench]`.
 */
import { parseArgs } from "node:util";
import { loadDevSecret } from "./auth/dev-secret.js";
import { mintToken } from "./auth/jwt.js";
import { parseDuration } from "./config.js";
import { migrate } from "./db/migrate.js";
import { createLogger } from "./logger.js";
import { configFromEnv, serve } from "./main.js";

const USAGE = `usage: realtime-gateway [command]

  serve                       run the gateway (default)
  migrate                     install or upgrade the realtime SQL schema (DATABASE_URL)
  token --sub ID [--name N] [--role agent] [--tickets '*'|1,2,3] [--ttl 1h]
                              mint a JWT signed with JWT_SECRET (or the embedded dev secret)
  bench [options]             load test against bare Socket.IO (docs/performance.md; bench --help)
`;

function fail(message: string): never {
  process.stderr.write(`realtime-gateway: ${message}\n`);
  process.exit(2);
}

async function token(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      sub: { type: "string" },
      name: { type: "string" },
      role: { type: "string", default: "agent" },
      tickets: { type: "string", default: "*" },
      ttl: { type: "string", default: "1h" },
    },
  });
  if (!values.sub) fail("token: --sub is required");
  const ttlMs = parseDuration(values.ttl!);
  if (ttlMs === undefined || ttlMs < 1000) fail(`token: --ttl must be a duration like 15m or 1h (got ${values.ttl})`);
  const config = configFromEnv();
  const secret = config.jwt.secret ?? (await loadDevSecret(config.dataDir));
  if (!secret) fail("token: set JWT_SECRET (or start the gateway once in embedded mode to create a dev secret under DATA_DIR)");
  const tickets = values.tickets!.split(",").map((t) => t.trim()).filter(Boolean);
  const jwt = await mintToken(secret, {
    sub: values.sub,
    name: values.name,
    role: values.role,
    tickets,
    ttlSeconds: Math.round(ttlMs / 1000),
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
  });
  process.stdout.write(`${jwt}\n`);
}

async function runMigrate(): Promise<void> {
  const config = configFromEnv(process.env, { requireJwt: false });
  if (!config.databaseUrl) fail("migrate: DATABASE_URL is required (embedded mode migrates by itself at start)");
  const logger = createLogger(config.logLevel);
  const result = await migrate(config.databaseUrl, config.pgChannel, logger);
  process.stdout.write(
    result.applied.length > 0
      ? `realtime schema at version ${result.version} (applied ${result.applied.join(", ")})\n`
      : `realtime schema already at version ${result.version}\n`,
  );
}

async function main(argv: string[]): Promise<void> {
  const [command = "serve", ...rest] = argv;
  switch (command) {
    case "serve":
      return serve();
    case "migrate":
      return runMigrate();
    case "token":
      return token(rest);
    case "bench": {
      const { bench } = await import("./bench/index.js");
      return bench(rest);
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command ${command}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`realtime-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
