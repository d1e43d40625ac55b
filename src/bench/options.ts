/**
 * `realtime-gateway bench` options: a scenario file from bench/scenarios/ gives the defaults, flags
 * override them. Bad input stops with one line that names the flag.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDuration } from "../config.js";

export const SCENARIOS = ["steady", "ramp", "hot", "storm", "writers"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  scenario: ScenarioName;
  clients: number;
  tickets: number;
  rate: number;
  durationMs: number;
  instances: number;
  workers: number;
  /** ramp: the rates to step through */
  steps: number[];
  stepDurationMs: number;
  p99LimitMs: number;
  /** writers: concurrent writers */
  writers: number;
  /** writers in the load scenarios (the pg pool size) */
  pool: number;
  connectConcurrency: number;
  /** storm: kill one instance this far into the run */
  killAfterMs: number;
  bare: boolean;
  gateway: boolean;
  url?: string[];
  databaseUrl?: string;
  jwtSecret?: string;
  out?: string;
  /** write a V8 CPU profile of every gateway and bare server into this directory (node --cpu-prof) */
  cpuProf?: string;
  quiet: boolean;
  json: boolean;
  prices: string;
  /** capacity model: events per second per 1,000 users */
  modelRatePer1000: number;
  command: string;
}

export class OptionError extends Error {}

/** a URL's password, for what the bench prints and writes */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]+:)[^@]*@/i, "$1***@");
}

function redactArgs(args: string[]): string[] {
  return args.map((arg, i) => (args[i - 1] === "--jwt-secret" ? "***" : args[i - 1] === "--database-url" ? redactUrl(arg) : arg));
}

/** the options as a result file may hold them: no secret, no password */
export function publicOptions(options: BenchOptions): BenchOptions {
  return {
    ...options,
    jwtSecret: options.jwtSecret === undefined ? undefined : "***",
    databaseUrl: options.databaseUrl === undefined ? undefined : redactUrl(options.databaseUrl),
  };
}

/** the package root: bench/ sits beside dist/ and src/ */
export const PACKAGE_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export const USAGE = `usage: realtime-gateway bench [--scenario steady|ramp|hot|storm|writers] [options]

  --clients N            light clients (default from the scenario)
  --tickets N            tickets; client i subscribes to ticket i mod N
  --rate N               events per second committed (steady, hot, storm)
  --duration 20s         load duration (per step for ramp: --step-duration)
  --instances N          gateway instances to start (storm needs 2)
  --workers N            generator worker threads (default: CPU count)
  --writers N            writers scenario: concurrent writers
  --pool N               load scenarios: PostgreSQL connections the writers commit through (default 32)
  --steps 100,200,...    ramp: the rates to step through; --step-duration 8s
  --kill-after 5s        storm: when to SIGKILL the second instance
  --url URL[,URL]        target a running deployment instead of starting gateways
  --database-url URL     its PostgreSQL (with --url); JWT_SECRET or --jwt-secret signs the tokens
  --no-bare              skip the bare Socket.IO baseline   --no-gateway  run only the baseline
  --out DIR              write result.json and chart.svg
  --cpu-prof DIR         write a CPU profile (.cpuprofile) of each gateway and bare server into DIR
  --quiet                no progress output; --json prints the JSON result instead of the table
`;

function number(name: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new OptionError(`--${name} must be a number >= ${min} (got ${raw})`);
  return value;
}

function duration(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = parseDuration(raw);
  if (value === undefined || value < 100) throw new OptionError(`--${name} must be a duration like 500ms, 20s or 1m (got ${raw})`);
  return value;
}

type ScenarioFile = Partial<Record<string, unknown>>;

export function loadScenario(name: ScenarioName): ScenarioFile {
  return JSON.parse(readFileSync(`${PACKAGE_ROOT}/bench/scenarios/${name}.json`, "utf8")) as ScenarioFile;
}

export function parseBenchArgs(args: string[], env: NodeJS.ProcessEnv = process.env, cpus = 2): BenchOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      scenario: { type: "string", default: "steady" },
      clients: { type: "string" },
      tickets: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      instances: { type: "string" },
      workers: { type: "string" },
      writers: { type: "string" },
      pool: { type: "string" },
      steps: { type: "string" },
      "step-duration": { type: "string" },
      "kill-after": { type: "string" },
      "connect-concurrency": { type: "string" },
      url: { type: "string" },
      "database-url": { type: "string" },
      "jwt-secret": { type: "string" },
      "no-bare": { type: "boolean", default: false },
      "no-gateway": { type: "boolean", default: false },
      out: { type: "string" },
      "cpu-prof": { type: "string" },
      prices: { type: "string" },
      "model-rate": { type: "string" },
      quiet: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) throw new OptionError(USAGE);
  const scenario = values.scenario as ScenarioName;
  if (!SCENARIOS.includes(scenario)) throw new OptionError(`--scenario must be one of ${SCENARIOS.join(", ")} (got ${values.scenario})`);
  const file = loadScenario(scenario);
  const d = (key: string, fallback: number) => (typeof file[key] === "number" ? (file[key] as number) : fallback);
  const dd = (key: string, fallback: number) => (typeof file[key] === "string" ? (parseDuration(file[key] as string) ?? fallback) : fallback);
  const url = values.url?.split(",").map((u) => u.trim()).filter(Boolean);
  for (const u of url ?? []) if (!/^https?:\/\//.test(u)) throw new OptionError(`--url must be http(s)://host:port (got ${u})`);
  const databaseUrl = values["database-url"];
  if (url && !databaseUrl && !values["no-gateway"]) throw new OptionError("--url needs --database-url (the writers commit through its PostgreSQL)");
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) throw new OptionError(`--database-url must be postgres://... (got ${databaseUrl})`);
  const jwtSecret = values["jwt-secret"] ?? env.JWT_SECRET;
  if (url && !values["no-gateway"] && !jwtSecret) throw new OptionError("--url needs the deployment's JWT_SECRET (env or --jwt-secret) to mint tokens");
  const steps = (values.steps ?? (Array.isArray(file.steps) ? (file.steps as number[]).join(",") : "100,200,500,1000,2000"))
    .split(",")
    .map((s) => number("steps", s.trim(), 0, 1));
  const options: BenchOptions = {
    scenario,
    clients: number("clients", values.clients, d("clients", 1000), 1),
    tickets: number("tickets", values.tickets, d("tickets", 100), 1),
    rate: number("rate", values.rate, d("rate", 100), 1),
    durationMs: duration("duration", values.duration, dd("duration", 20_000)),
    instances: number("instances", values.instances, d("instances", 2), 1),
    workers: number("workers", values.workers, d("workers", Math.max(1, cpus)), 1),
    steps,
    stepDurationMs: duration("step-duration", values["step-duration"], dd("stepDuration", 10_000)),
    p99LimitMs: d("p99LimitMs", 100),
    writers: number("writers", values.writers, d("writers", 32), 1),
    pool: number("pool", values.pool, d("pool", 32), 1),
    connectConcurrency: number("connect-concurrency", values["connect-concurrency"], d("connectConcurrency", 200), 1),
    killAfterMs: duration("kill-after", values["kill-after"], dd("killAfter", 5000)),
    bare: !values["no-bare"],
    gateway: !values["no-gateway"],
    url,
    databaseUrl,
    jwtSecret,
    out: values.out,
    cpuProf: values["cpu-prof"],
    quiet: values.quiet!,
    json: values.json!,
    prices: values.prices ?? `${PACKAGE_ROOT}/bench/prices.json`,
    modelRatePer1000: number("model-rate", values["model-rate"], d("modelRatePer1000", 10), 0),
    command: ["realtime-gateway", "bench", ...redactArgs(args)].join(" "),
  };
  if (scenario === "hot") options.tickets = 1;
  if (scenario === "storm" && !url && options.instances < 2) throw new OptionError("--scenario storm needs --instances 2 or more (one is killed)");
  if (!options.bare && !options.gateway) throw new OptionError("--no-bare and --no-gateway leave nothing to measure");
  if (options.workers > 64) throw new OptionError("--workers must be at most 64");
  return options;
}
