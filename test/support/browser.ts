/**
 * Chromium for the browser tests, from the npm registry: @sparticuz/chromium ships a headless
 * Chromium inside the package (unpacked on first use into <tmp>/sparticuz-chromium-<version>/), driven
 * by playwright-core.
 * A system Chromium is used instead only when one is there (CHROMIUM_PATH, or /usr/bin/chromium).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium as playwright, type Browser } from "playwright-core";

const SYSTEM_CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-sandbox", "--headless"];

/** Whether the binary runs at all: an unpacking cut short (a killed run) leaves a truncated file. */
function runs(executable: string): boolean {
  const probe = spawnSync(executable, ["--headless", "--no-sandbox", "--version"], { encoding: "utf8", timeout: 30_000 });
  return probe.status === 0 && /chrom/i.test(probe.stdout);
}

/**
 * The package unpacks into os.tmpdir() and reuses whatever `chromium` (and SwiftShader libraries) it
 * finds there, whichever version left them: unpack into a directory of this version instead.
 */
async function unpack(chromium: typeof import("@sparticuz/chromium").default): Promise<string> {
  const packageJson = join(dirname(createRequire(import.meta.url).resolve("@sparticuz/chromium")), "..", "package.json");
  const { version } = JSON.parse(readFileSync(packageJson, "utf8")) as { version: string };
  const dir = join(tmpdir(), `sparticuz-chromium-${version}`);
  mkdirSync(dir, { recursive: true });
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await chromium.executablePath();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

async function npmChromium(): Promise<{ executablePath: string; args: string[] }> {
  const { default: chromium } = await import("@sparticuz/chromium");
  let executablePath = await unpack(chromium);
  if (!runs(executablePath)) {
    // the package only unpacks when the file is missing: remove the broken one and unpack again
    rmSync(executablePath, { force: true });
    executablePath = await unpack(chromium);
    if (!runs(executablePath)) throw new Error(`the Chromium of @sparticuz/chromium (${executablePath}) does not run on this machine`);
  }
  // --single-process (for AWS Lambda's sandbox) takes the whole browser down when a context closes
  return { executablePath, args: chromium.args.filter((arg) => arg !== "--single-process") };
}

export async function launchChromium(): Promise<Browser> {
  if (existsSync(SYSTEM_CHROMIUM)) {
    return playwright.launch({ executablePath: SYSTEM_CHROMIUM, args: ["--disable-gpu", ...QUIET] });
  }
  if (process.env.CHROMIUM_PATH) throw new Error(`CHROMIUM_PATH=${process.env.CHROMIUM_PATH} does not exist`);
  const { executablePath, args } = await npmChromium();
  return playwright.launch({ executablePath, args: [...args, ...QUIET] });
}
