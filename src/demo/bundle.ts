/**
 * The browser bundle of `realtime-gateway/client` (esbuild): one ES module with socket.io-client
 * inside, served by the gateway at /client.js. `npm run build:client` (part of `npm run build`)
 * writes it, with the demo page's static files, to dist/public/; a gateway running from source
 * builds it in memory instead (see assets.ts), so tests always serve the current client.
 */
import { cp, mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const ENTRY = fileURLToPath(new URL("../client/index.ts", import.meta.url));
const DEMO_FILES = fileURLToPath(new URL("./public/", import.meta.url));
const OUT_DIR = fileURLToPath(new URL("../../dist/public/", import.meta.url));

export interface ClientBundle {
  code: string;
  map: string;
}

export async function buildClientBundle(): Promise<ClientBundle> {
  const result = await build({
    entryPoints: [ENTRY],
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

/** dist/public/: the demo page's files and client.js (+ its source map). */
export async function writeDemoAssets(outDir = OUT_DIR): Promise<void> {
  const bundle = await buildClientBundle();
  await mkdir(outDir, { recursive: true });
  await cp(DEMO_FILES, outDir, { recursive: true });
  await writeFile(`${outDir}/client.js`, bundle.code);
  await writeFile(`${outDir}/client.js.map`, bundle.map);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  writeDemoAssets().then(
    () => process.stdout.write(`client bundle and demo page written to ${OUT_DIR}\n`),
    (error: unknown) => {
      process.stderr.write(`build:client failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
