/**
 * A self-contained SVG (no scripts, no fonts, no network): latency over time (p50 and p99 per
 * second, each target one colour) on top, the latency distribution (share of deliveries per bin)
 * below.
 */
import type { TargetResult } from "./run-load.js";

const COLORS: Record<string, string> = { gateway: "#d9480f", bare: "#1971c2" };
const W = 900;
const H = 280;
const PAD = { l: 60, r: 20, t: 30, b: 40 };

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);

function logScale(max: number) {
  const top = Math.max(1, max);
  const lo = 0.1;
  return (v: number) => {
    const clamped = Math.max(lo, Math.min(top, v));
    return PAD.t + (H - PAD.t - PAD.b) * (1 - Math.log10(clamped / lo) / Math.log10(top / lo));
  };
}

function timelinePanel(results: TargetResult[], offsetY: number): string {
  const points = results.flatMap((r) => {
    let t0 = 0;
    return r.steps.flatMap((s) => {
      const shifted = s.timeline.map((p) => ({ ...p, t: p.t + t0 }));
      t0 += Math.max(1, ...s.timeline.map((p) => p.t + 1));
      return shifted;
    });
  });
  const maxT = Math.max(1, ...points.map((p) => p.t + 1));
  const maxV = Math.max(10, ...points.map((p) => (Number.isFinite(p.p99) ? p.p99 : 0)));
  const y = logScale(maxV * 1.2);
  const x = (t: number) => PAD.l + ((W - PAD.l - PAD.r) * t) / maxT;
  const out: string[] = [`<g transform="translate(0,${offsetY})">`, `<text x="${PAD.l}" y="18" font-size="14" font-weight="bold">commit-to-client latency over time (ms, log scale): solid p99, dashed p50</text>`];
  for (const v of [0.1, 1, 10, 100, 1000, 10000].filter((v) => v <= maxV * 1.2)) {
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${PAD.l - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v}</text>`);
  }
  out.push(`<line x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}" stroke="#999"/>`);
  for (let t = 0; t <= maxT; t += Math.max(1, Math.ceil(maxT / 10))) {
    out.push(`<text x="${x(t)}" y="${H - PAD.b + 16}" font-size="11" text-anchor="middle">${t}s</text>`);
  }
  results.forEach((r, i) => {
    let t0 = 0;
    const series: { t: number; p50: number; p99: number }[] = [];
    for (const s of r.steps) {
      for (const p of s.timeline) series.push({ t: p.t + t0, p50: p.p50, p99: p.p99 });
      t0 += Math.max(1, ...s.timeline.map((p) => p.t + 1));
    }
    const color = COLORS[r.kind] ?? "#555";
    const path = (key: "p50" | "p99") => series.map((p, j) => `${j ? "L" : "M"}${x(p.t + 0.5).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    if (series.length) {
      out.push(`<path d="${path("p99")}" fill="none" stroke="${color}" stroke-width="2"/>`);
      out.push(`<path d="${path("p50")}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    }
    out.push(`<rect x="${W - 200}" y="${PAD.t + i * 18}" width="12" height="12" fill="${color}"/><text x="${W - 182}" y="${PAD.t + i * 18 + 11}" font-size="12">${esc(r.kind === "bare" ? "bare Socket.IO" : r.kind)}</text>`);
  });
  out.push("</g>");
  return out.join("\n");
}

function histogramPanel(results: TargetResult[], offsetY: number): string {
  const bins = results[0]?.steps[0]?.histogram.map((b) => b.le) ?? [];
  const shares = results.map((r) => {
    const counts = bins.map((_, i) => r.steps.reduce((s, step) => s + (step.histogram[i]?.count ?? 0), 0));
    const total = Math.max(1, counts.reduce((a, b) => a + b, 0));
    return counts.map((c) => c / total);
  });
  const inner = W - PAD.l - PAD.r;
  const group = inner / Math.max(1, bins.length);
  const bar = (group * 0.8) / Math.max(1, results.length);
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - v);
  const out: string[] = [`<g transform="translate(0,${offsetY})">`, `<text x="${PAD.l}" y="18" font-size="14" font-weight="bold">latency distribution: share of deliveries per bin (ms, upper bound)</text>`];
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${PAD.l - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v * 100}%</text>`);
  }
  bins.forEach((le, i) => {
    out.push(`<text x="${PAD.l + group * (i + 0.5)}" y="${H - PAD.b + 16}" font-size="11" text-anchor="middle">${Number.isFinite(le) ? `≤${le}` : "more"}</text>`);
    results.forEach((r, k) => {
      const share = shares[k]![i]!;
      out.push(`<rect x="${(PAD.l + group * i + group * 0.1 + bar * k).toFixed(1)}" y="${y(share).toFixed(1)}" width="${bar.toFixed(1)}" height="${(H - PAD.b - y(share)).toFixed(1)}" fill="${COLORS[r.kind] ?? "#555"}"><title>${esc(r.kind)} ≤${le} ms: ${(share * 100).toFixed(1)}%</title></rect>`);
    });
  });
  out.push("</g>");
  return out.join("\n");
}

export function renderChart(results: TargetResult[], caption: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 40}" viewBox="0 0 ${W} ${2 * H + 40}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
${timelinePanel(results, 0)}
${histogramPanel(results, H)}
<text x="${PAD.l}" y="${2 * H + 28}" font-size="11" fill="#555">${esc(caption)}</text>
</svg>
`;
}
