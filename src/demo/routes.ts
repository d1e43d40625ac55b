/**
 * The demo page (GET /, only with DEMO_UI) and its demo-only API under /demo: agents, tokens
 * minted with the gateway's own secret, ticket snapshots, and the writes behind the page's
 * buttons. Never enable DEMO_UI where real users connect: /demo/token hands out agent tokens.
 */
import express, { type NextFunction, type Request, type Response, type Router } from "express";
import { z } from "zod";
import { InvalidTokenError, mintToken, type TokenVerifier } from "../auth/jwt.js";
import { createPool } from "../db/pool.js";
import { coerceError, ErrorCode } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Claims } from "../protocol.js";
import { ticketIdSchema, describeIssue } from "../socket/schemas.js";
import { loadClientBundle, STATIC_DIR } from "./assets.js";
import { DemoStore, STATUSES } from "./store.js";

export interface DemoOptions {
  databaseUrl: string;
  /** the HS256 secret the gateway verifies with; undefined (public key, JWKS) disables /demo/token */
  secret: string | undefined;
  verifier: TokenVerifier;
  issuer?: string;
  audience?: string;
  logger: Logger;
  /** @default 900 (15 minutes: long enough to play, short enough that the page refreshes it) */
  tokenTtlSeconds?: number;
}

export interface DemoApp {
  router: Router;
  close(): Promise<void>;
}

export const DEMO_AGENTS = [
  { id: "alice", name: "Alice Martin" },
  { id: "bob", name: "Bob Chen" },
  { id: "carol", name: "Carol Diaz" },
] as const;

const NOT_FOUND = "NOT_FOUND";

class DemoError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const tokenBody = z.object({ agent: z.enum(DEMO_AGENTS.map((a) => a.id) as [string, ...string[]], { error: `agent must be one of ${DEMO_AGENTS.map((a) => a.id).join(", ")}` }) });
const statusBody = z.object({ status: z.enum(STATUSES, { error: `status must be one of ${STATUSES.join(", ")}` }) });
const commentBody = z.object({
  body: z.string({ error: "body must be a string" }).trim().min(1, "body must not be empty").max(2000, "body must be at most 2000 characters"),
});

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new DemoError(400, ErrorCode.INVALID_PAYLOAD, describeIssue(result.error));
  return result.data;
}

function ticketId(req: Request): string {
  return parse(ticketIdSchema, req.params.id);
}

/** The page is same-origin only: scripts, styles and sockets from this gateway, nothing else. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export function createDemoApp(options: DemoOptions): DemoApp {
  const pool = createPool(options.databaseUrl, options.logger.child({ component: "demo" }), { max: 3, application_name: "realtime-gateway demo" });
  const store = new DemoStore(pool);
  const ttl = options.tokenTtlSeconds ?? 900;

  async function agentOf(req: Request): Promise<Claims> {
    const match = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "");
    if (!match) throw new DemoError(401, ErrorCode.UNAUTHORIZED, "send the demo token as Authorization: Bearer <token>");
    try {
      return await options.verifier.verify(match[1]);
    } catch (error) {
      throw new DemoError(401, ErrorCode.UNAUTHORIZED, error instanceof InvalidTokenError ? error.message : "token could not be verified");
    }
  }

  const api = express.Router();
  api.use(express.json({ limit: "16kb" }));
  api.get("/agents", (_req, res) => {
    res.json({ agents: DEMO_AGENTS });
  });
  api.post("/token", async (req, res) => {
    const { agent } = parse(tokenBody, req.body);
    if (options.secret === undefined) {
      throw new DemoError(501, ErrorCode.UNAVAILABLE, "demo tokens need an HS256 JWT_SECRET (this gateway verifies with a public key or JWKS)");
    }
    const { id, name } = DEMO_AGENTS.find((a) => a.id === agent)!;
    const token = await mintToken(options.secret, { sub: id, name, role: "agent", tickets: ["*"], ttlSeconds: ttl, issuer: options.issuer, audience: options.audience });
    res.json({ token, agent: { id, name }, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() });
  });
  api.get("/tickets", async (_req, res) => {
    res.json({ tickets: await store.tickets() });
  });
  api.get("/tickets/:id", async (req, res) => {
    const snapshot = await store.snapshot(ticketId(req));
    if (!snapshot) throw new DemoError(404, NOT_FOUND, `no ticket ${req.params.id}`);
    res.json(snapshot);
  });
  api.post("/tickets/:id", async (req, res) => {
    const id = ticketId(req);
    await agentOf(req);
    const { status } = parse(statusBody, req.body);
    const ticket = await store.setStatus(id, status);
    if (!ticket) throw new DemoError(404, NOT_FOUND, `no ticket ${id}`);
    res.json({ ticket });
  });
  api.post("/tickets/:id/comments", async (req, res) => {
    const id = ticketId(req);
    const agent = await agentOf(req);
    const { body } = parse(commentBody, req.body);
    const comment = await store.addComment(id, agent.name, body);
    if (!comment) throw new DemoError(404, NOT_FOUND, `no ticket ${id}`);
    res.status(201).json({ comment });
  });
  api.use((req, _res, next) => next(new DemoError(404, NOT_FOUND, `no demo route ${req.method} ${req.path}`)));
  // four arguments: this is how express recognises an error handler
  api.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const { status, code, message } = classify(error, options.logger);
    res.status(status).json({ error: { code, message } });
  });

  const router = express.Router();
  router.use("/demo", api);
  const sendBundle = (part: "code" | "map") => async (_req: Request, res: Response) => {
    try {
      const bundle = await loadClientBundle();
      res.type(part === "code" ? "text/javascript" : "application/json").set("cache-control", "no-cache").send(bundle[part]);
    } catch (error) {
      options.logger.error({ err: coerceError(error) }, "client bundle unavailable");
      res.status(503).type("text/plain").send("client bundle unavailable: run `npm run build`\n");
    }
  };
  router.get("/client.js", sendBundle("code"));
  router.get("/client.js.map", sendBundle("map"));
  router.use(
    express.static(STATIC_DIR, {
      index: "index.html",
      setHeaders: (res) => {
        res.setHeader("content-security-policy", CSP);
        res.setHeader("cache-control", "no-cache");
      },
    }),
  );

  return { router, close: () => pool.end() };
}

function classify(error: unknown, logger: Logger): { status: number; code: string; message: string } {
  if (error instanceof DemoError) return { status: error.status, code: error.code, message: error.message };
  const failure = error as { type?: string; code?: string; status?: number };
  if (failure.type === "entity.parse.failed") return { status: 400, code: ErrorCode.INVALID_PAYLOAD, message: "body must be JSON" };
  if (failure.type === "entity.too.large") return { status: 413, code: ErrorCode.INVALID_PAYLOAD, message: "body too large (16 KiB at most)" };
  if (failure.code === "42P01") {
    return { status: 503, code: ErrorCode.UNAVAILABLE, message: "the demo tables do not exist in this database (embedded mode creates them; see seedDemo)" };
  }
  logger.warn({ err: coerceError(error) }, "demo request failed");
  return { status: 503, code: ErrorCode.UNAVAILABLE, message: "the demo database is unavailable, retry later" };
}
