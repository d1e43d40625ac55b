/**
 * The demo page's files and the client, for a built gateway. The client lives in its own package
 * (client/, `@realtime-gateway/client`); client/build.mjs makes its browser bundle: one ES module with
 * socket.io-client inside, served by the gateway at /client.js. `npm run build` writes, after the
 * client's own build:
 *   dist/public/  the demo page's static files, client.js and its source map
 *   dist/client/  a copy of client/dist, so `realtime-gateway/client` keeps working for existing users
 * A gateway running from source builds the bundle in memory instead (see assets.ts), so tests always
 * serve the current client.
 */
import { cp, mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

const CLIENT_BUILD = new URL("../../client/build.mjs", import.meta.url).href;
const CLIENT_DIST = fileURLToPath(new URL("../../client/dist/", import.meta.url));
const DEMO_FILES = fileURLToPath(new URL("./public/", import.meta.url));
const PUBLIC_DIR = fileURLToPath(new URL("../../dist/public/", import.meta.url));
const CLIENT_COPY = fileURLToPath(new URL("../../dist/client/", import.meta.url));

export interface ClientBundle {
  code: string;
  map: string;
}

export async function buildClientBundle(): Promise<ClientBundle> {
  const { browserBundle } = (await import(CLIENT_BUILD)) as { browserBundle(): Promise<ClientBundle> };
  return browserBundle();
}

/** dist/public/: the demo page's files and client.js (+ its source map). */
export async function writeDemoAssets(outDir = PUBLIC_DIR): Promise<void> {
  const bundle = await buildClientBundle();
  await mkdir(outDir, { recursive: true });
  await cp(DEMO_FILES, outDir, { recursive: true });
  await writeFile(`${outDir}/client.js`, bundle.code);
  await writeFile(`${outDir}/client.js.map`, bundle.map);
}

/** dist/client/: the client package's modules and types (built by client/build.mjs first). */
export async function copyClientBuild(outDir = CLIENT_COPY): Promise<void> {
  await cp(CLIENT_DIST, outDir, { recursive: true, filter: (source) => !source.includes("/browser") });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  Promise.all([writeDemoAssets(), copyClientBuild()]).then(
    () => process.stdout.write(`demo page written to ${PUBLIC_DIR}, client to ${CLIENT_COPY}\n`),
    (error: unknown) => {
      process.stderr.write(`build of the demo assets failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
