/**
 * Where the demo page's files come from. A built gateway (dist/) serves dist/public/, written by
 * `npm run build`; a gateway running from source (tsx: tests, development) serves src/demo/public/
 * and builds /client.js in memory, so it never serves a stale bundle.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { ClientBundle } from "./bundle.js";

const FROM_SOURCE = import.meta.url.endsWith(".ts");

/** the directory of index.html, app.js and style.css */
export const STATIC_DIR = fileURLToPath(new URL(FROM_SOURCE ? "./public/" : "../public/", import.meta.url));

let bundle: Promise<ClientBundle> | undefined;

export function loadClientBundle(): Promise<ClientBundle> {
  bundle ??= (async () => {
    if (FROM_SOURCE) {
      // a dev-only dependency, loaded only when running from source
      const { buildClientBundle } = await import("./bundle.js");
      return buildClientBundle();
    }
    const [code, map] = await Promise.all([readFile(`${STATIC_DIR}/client.js`, "utf8"), readFile(`${STATIC_DIR}/client.js.map`, "utf8")]);
    return { code, map };
  })();
  // a failed build is retried on the next request instead of being cached
  bundle.catch(() => (bundle = undefined));
  return bundle;
}
