/** The public HTTP routes (health, readiness, demo) and the metrics server on its own port. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import express, { type Express, type Router } from "express";
import type { Registry } from "prom-client";
import { coerceError } from "./errors.js";
import { withTimeout } from "./lifecycle.js";

/** A readiness check resolves a reason when the dependency is not usable, undefined when it is. */
export type ReadinessCheck = () => Promise<string | undefined> | string | undefined;

/** Socket.IO's path on the public port (see the Server options in gateway.ts). */
export const SOCKET_IO_PATH = "/socket.io";

export interface HttpAppOptions {
  /** the demo page and its /demo API (src/demo), mounted after the probes when DEMO_UI is on */
  demo?: { router: Router };
  /** `GET /sse` (src/sse): Server-Sent Events */
  sse?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

export function createHttpApp(checks: Map<string, ReadinessCheck>, isDraining: () => boolean, options: HttpAppOptions = {}): Express {
  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.status(200).json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    if (isDraining()) {
      res.status(503).json({ status: "unavailable", reason: "draining" });
      return;
    }
    const failures: Record<string, string> = {};
    await Promise.all(
      [...checks].map(async ([name, check]) => {
        try {
          const reason = await withTimeout(Promise.resolve(check()), 2000, `${name} check`);
          if (reason !== undefined) failures[name] = reason;
        } catch (error) {
          failures[name] = coerceError(error).message;
        }
      }),
    );
    const names = Object.keys(failures);
    if (names.length === 0) res.status(200).json({ status: "ready" });
    else res.status(503).json({ status: "unavailable", reason: names.map((n) => `${n}: ${failures[n]}`).join("; "), failures });
  });
  const sse = options.sse;
  // the route never throws (it answers its own refusals); the URL may hold a token, so no request logging here
  if (sse) app.get("/sse", (req, res) => void sse(req, res));
  if (options.demo) app.use(options.demo.router);
  return app;
}

export function createMetricsServer(registry: Registry): Server {
  return createServer((req, res) => {
    if (req.method === "GET" && req.url?.split("?")[0] === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(coerceError(error).message);
        },
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: metrics are at /metrics\n");
  });
}
