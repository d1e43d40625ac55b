/**
 * Builds @realtime-gateway/client into dist/: ES modules with their .d.ts (tsc), and
 * dist/browser/client.js, one minified ES module with socket.io-client inside (esbuild), the file the
 * gateway's demo page loads as /client.js. The compilers come from the repository's root install.
 *
 *   node build.mjs            build dist/
 *   import { browserBundle }  the bundle in memory (the gateway's dev server uses it)
 */
import { execFileSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, "dist");

/** { code, map } of the browser bundle; its source map is linked as client.js.map */
export async function browserBundle() {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(HERE, "src", "index.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2020", "chrome90", "firefox90", "safari15"],
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    write: false,
    outfile: "client.js",
    logLevel: "silent",
  });
  const code = result.outputFiles.find((f) => f.path.endsWith("client.js"))?.text;
  const map = result.outputFiles.find((f) => f.path.endsWith("client.js.map"))?.text;
  if (code === undefined || map === undefined) throw new Error("esbuild produced no client bundle");
  return { code, map };
}

async function main() {
  await rm(DIST, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(HERE, "tsconfig.json")], { stdio: "inherit" });
  const { code, map } = await browserBundle();
  await mkdir(join(DIST, "browser"), { recursive: true });
  await writeFile(join(DIST, "browser", "client.js"), code);
  await writeFile(join(DIST, "browser", "client.js.map"), map);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error) => {
    process.stderr.write(`client build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
