/**
 * The documentation stays self-contained and navigable: every relative link and anchor in the
 * repository's Markdown (README.md, docs/, k8s/, client/) resolves to a file inside the repository
 * and a heading that exists; nothing points outside it; every variable src/config.ts reads is
 * documented in docs/configuration.md; the demo page's doc references exist.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { expect } from "chai";
import { CONFIG_VARIABLES } from "../src/config.js";
import { ROOT } from "./support/process.js";

const DOCS = join(ROOT, "docs");

function markdownFiles(): string[] {
  const files = [join(ROOT, "README.md"), ...readdirSync(DOCS).filter((f) => f.endsWith(".md")).map((f) => join(DOCS, f))];
  for (const extra of ["k8s/README.md", "client/README.md"]) if (existsSync(join(ROOT, extra))) files.push(join(ROOT, extra));
  return files;
}

/** The text outside fenced code blocks, inline code spans blanked (they are not links). */
function prose(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
      lines.push("");
      continue;
    }
    lines.push(fence === undefined ? line.replace(/`[^`]*`/g, "``") : "");
  }
  return lines;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const heading = fence ? undefined : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const text = heading.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/<[^>]+>/g, "");
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

function linksOf(file: string): Link[] {
  const links: Link[] = [];
  prose(readFileSync(file, "utf8")).forEach((text, index) => {
    const targets = [
      ...[...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
      ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/g)].map((m) => m[1]!),
      ...[...text.matchAll(/\b(?:href|src)="([^"]+)"/g)].map((m) => m[1]!),
    ];
    for (const target of targets) links.push({ file, line: index + 1, target });
  });
  return links;
}

/** Why a link does not resolve, or undefined when it does. */
function problem(link: Link): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) return undefined; // https:, mailto: …: not a file
  const [rawPath, anchor] = link.target.split("#", 2) as [string, string | undefined];
  const path = decodeURIComponent(rawPath);
  if (path.startsWith("/")) return "absolute path (write it relative to the file)";
  const target = path === "" ? link.file : resolve(dirname(link.file), path);
  const inside = relative(ROOT, target);
  if (inside.startsWith("..") || inside.split(sep)[0] === "node_modules") return "points outside the repository";
  if (!existsSync(target)) return `no such file: ${inside}`;
  if (anchor === undefined) return undefined;
  if (statSync(target).isDirectory() || !target.endsWith(".md")) return `anchor #${anchor} on a file that is not Markdown`;
  if (!anchorsOf(readFileSync(target, "utf8")).has(anchor)) return `no heading for #${anchor} in ${inside}`;
  return undefined;
}

describe("documentation", () => {
  const files = markdownFiles();

  it("has the reference in docs/", () => {
    const names = readdirSync(DOCS);
    for (const doc of ["README.md", "protocol.md", "client.md", "sql.md", "delivery.md", "configuration.md", "operations.md", "security.md", "performance.md"]) {
      expect(names, `docs/${doc}`).to.include(doc);
    }
  });

  it("resolves every relative link and anchor in README.md and docs/, inside the repository", () => {
    const links = files.flatMap(linksOf);
    expect(links.length, "links found").to.be.greaterThan(30);
    const broken = links.flatMap((link) => {
      const why = problem(link);
      return why ? [`${relative(ROOT, link.file)}:${link.line}: ${link.target}: ${why}`] : [];
    });
    expect(broken).to.deep.equal([]);
  });

  it("names nothing outside the repository", () => {
    for (const file of files) {
      expect(readFileSync(file, "utf8"), relative(ROOT, file)).to.not.match(/\.\.\/shared|shared\/SPEC\.md/);
    }
  });

  it("keeps the README short and links each docs/ page from it", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme.length, "README.md bytes").to.be.below(10_000);
    expect(readme).to.match(/```mermaid\n/);
    for (const doc of readdirSync(DOCS).filter((f) => f.endsWith(".md") && f !== "README.md")) expect(readme, doc).to.include(`](docs/${doc})`);
  });

  it("documents every variable src/config.ts reads in docs/configuration.md", () => {
    const text = readFileSync(join(DOCS, "configuration.md"), "utf8");
    const section = /\n## Variables\n([\s\S]*?)\n## /.exec(text)?.[1] ?? "";
    const documented = new Set([...section.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
    // HOSTNAME is not a setting of its own: INSTANCE_ID defaults to the host name
    const missing = CONFIG_VARIABLES.filter((name) => name !== "HOSTNAME" && !documented.has(name));
    expect(missing).to.deep.equal([]);
  });

  it("finds the docs the demo page refers to", () => {
    const dir = join(ROOT, "src", "demo", "public");
    const refs = readdirSync(dir).flatMap((f) => [...readFileSync(join(dir, f), "utf8").matchAll(/\bdocs\/[\w./-]+\.md\b/g)].map((m) => m[0]));
    expect(refs).to.include("docs/client.md");
    for (const ref of refs) expect(existsSync(join(ROOT, ref)), ref).to.equal(true);
  });
});
