import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { parse, parseAllDocuments } from "yaml";
import { CHART_DIR, ROOT, kubeTools } from "../k8s/render.js";
import { collect, connect, connectError, eventually, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { scrape } from "./support/metrics.js";

const MONITORING = join(ROOT, "k8s", "monitoring");
const read = (path: string) => readFileSync(path, "utf8");

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Panel {
  type: string;
  title: string;
  panels?: Panel[];
  targets?: Array<{ expr: string }>;
}

const dashboard = () => JSON.parse(read(join(MONITORING, "grafana-dashboard.json"))) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string }> } };
const chartRules = () => parse(read(join(CHART_DIR, "files", "alerts.yaml"))) as { groups: Array<{ name: string; rules: Rule[] }> };
const plainRule = () => parseAllDocuments(read(join(MONITORING, "prometheusrule.yaml")))[0]!.toJS() as { spec: { groups: Array<{ name: string; rules: Rule[] }> } };
const panelsOf = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
const dashboardExprs = () => panelsOf(dashboard().panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
const ruleExprs = () => plainRule().spec.groups.flatMap((g) => g.rules.map((r) => r.expr));

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan"]);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords, labels, or grouping lists. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, " ") // matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(GROUPING, " ")
    .replace(/\$\w+/g, " "); // Grafana variables
  const names = new Set<string>();
  for (const match of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    if (match[2] || KEYWORDS.has(match[1]!.toLowerCase())) continue;
    names.add(match[1]!);
  }
  return [...names];
}

/** The label names a grouping clause uses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(GROUPING)].flatMap((m) => m[2]!.split(",").map((s) => s.trim()).filter(Boolean));
}

describe("monitoring: Grafana dashboard and alert rules", () => {
  it("extracts metric names from PromQL", () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~"$ns", job="j"}[5m]))) > 0.5')).to.deep.equal(["a_bucket"]);
    expect(metricNames("max(b{}) / (c > 0) and deriv(max by (namespace) (d)[5m:30s]) > 0 or absent(e{job=\"x\"})")).to.deep.equal(["b", "c", "d", "e"]);
  });

  it("the dashboard parses, uses a data-source variable, and has every panel operators need", () => {
    const dash = dashboard();
    expect(dash.uid).to.equal("realtime-gateway");
    expect(dash.templating.list.find((v) => v.name === "datasource")).to.include({ type: "datasource" });
    const exprs = dashboardExprs();
    expect(exprs.length).to.be.at.least(20);
    const has = (pattern: RegExp, what: string) => expect(exprs.some((e) => pattern.test(e)), what).to.equal(true);
    has(/sum by \(instance_id\) \(gateway_connections\{/, "connections per instance");
    has(/sum by \(reason\) \(rate\(gateway_connections_rejected_total/, "rejections by reason");
    has(/rate\(gateway_ticket_updates_emitted_total/, "events per second");
    has(/histogram_quantile\(0\.5, .*gateway_ticket_update_latency_seconds_bucket/, "latency p50");
    has(/histogram_quantile\(0\.99, .*gateway_ticket_update_latency_seconds_bucket/, "latency p99");
    has(/gateway_listener_backlog/, "listener backlog");
    has(/process_resident_memory_bytes\{[^}]*\} \/ \(gateway_connections\{/, "memory per connection");
    has(/nodejs_eventloop_lag_p99_seconds/, "event-loop lag");
  });

  it("k8s/monitoring/prometheusrule.yaml holds exactly the chart's rules, with the plain manifests' job and cap", () => {
    const expected = JSON.parse(
      JSON.stringify(chartRules()).replaceAll("__SELECTOR__", 'job=\\"realtime-gateway-metrics\\"').replaceAll("__MAX_CONNECTIONS__", "10000"),
    ) as ReturnType<typeof chartRules>;
    const rule = plainRule();
    expect(rule.spec.groups).to.deep.equal(expected.groups);
    new PrometheusRule(rule as never).validate();
    const alerts = rule.spec.groups.flatMap((g) => g.rules);
    // the list: no listener, more than one, backlog growing, p99 > 500 ms, 80 % of MAX_CONNECTIONS,
    // Redis or PostgreSQL down, sustained rejections
    const byName = new Map(alerts.map((a) => [a.alert, a]));
    expect(byName.get("RealtimeGatewayNoListener")).to.include({ for: "1m" });
    expect(byName.get("RealtimeGatewayMultipleListeners")!.expr).to.match(/gateway_listener_leader.*\) > 1$/);
    expect(byName.get("RealtimeGatewayBacklogGrowing")).to.include({ for: "5m" });
    expect(byName.get("RealtimeGatewayUpdateLatencyHigh")).to.include({ for: "5m" });
    expect(byName.get("RealtimeGatewayUpdateLatencyHigh")!.expr).to.match(/^histogram_quantile\(0\.99, .*\) > 0\.5$/);
    expect(byName.get("RealtimeGatewayNearConnectionCap")!.expr).to.match(/> 0\.8 \* 10000$/);
    expect(byName.get("RealtimeGatewayRedisDisconnected")!.expr).to.include("gateway_redis_connected");
    expect(byName.get("RealtimeGatewayPostgresDisconnected")!.expr).to.include("gateway_listener_connected");
    expect(byName.get("RealtimeGatewayRejectionsSustained")!.expr).to.include("gateway_connections_rejected_total");
    for (const alert of alerts) {
      expect(alert.labels?.severity, alert.alert).to.be.oneOf(["warning", "critical"]);
      expect(alert.annotations?.summary, alert.alert).to.be.a("string");
      expect(alert.for, alert.alert).to.match(/^\d+m$/);
    }
  });

  it("every PromQL expression refers only to metrics and labels a real gateway exports", async () => {
    // scripted activity so labelled series exist: a rejection, a client event, a delivered update
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!);
    await request(socket, "ticket:subscribe", { ticketId: "M1" });
    const seen = collect(socket, "ticket:update");
    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('M1', 'note', '{}')");
    await eventually(() => seen.length === 1, "the update");
    await connectError(cluster.urls[0]!, { token: "not-a-jwt" });
    let text = "";
    await eventually(async () => {
      // nodejs_gc_duration_seconds appears once a collection ran: make garbage until one has
      for (let i = 0; i < 50; i++) new Array(100_000).fill(i);
      text = await scrape(cluster.gateways[0]!.metricsPort);
      return /^nodejs_gc_duration_seconds_sum\{/m.test(text);
    }, "a GC to be recorded");
    const samples = text.split("\n").filter((line) => line && !line.startsWith("#"));
    const exported = new Set(samples.map((line) => /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)![0]));
    const labels = new Set(samples.flatMap((line) => [...(/\{([^}]*)\}/.exec(line)?.[1] ?? "").matchAll(/(\w+)="/g)].map((m) => m[1]!)));
    // labels Prometheus attaches to every target (the ServiceMonitor adds namespace and pod)
    for (const target of ["job", "instance", "namespace", "pod"]) labels.add(target);

    const exprs = [...dashboardExprs(), ...ruleExprs()];
    const used = new Set(exprs.flatMap(metricNames));
    expect(used.size).to.be.at.least(15);
    const missing = [...used].filter((name) => !exported.has(name));
    expect(missing, "metric names no gateway exports").to.deep.equal([]);
    const unknownLabels = [...new Set(exprs.flatMap(groupingLabels))].filter((label) => !labels.has(label));
    expect(unknownLabels, "grouping labels no series carries").to.deep.equal([]);
    // and every gateway_* metric is on the dashboard or in a rule, except the limiter's fallback flag and the malformed-NOTIFY counter
    const gatewayMetrics = [...new Set([...text.matchAll(/^# TYPE (gateway_\w+)/gm)].map((m) => m[1]!))];
    const shown = (name: string) => [...used].some((u) => u === name || u.startsWith(`${name}_`));
    expect(gatewayMetrics.filter((name) => !shown(name))).to.deep.equal(["gateway_listener_malformed_notifications_total", "gateway_limiter_fallback"]);
  });

  it("kubectl kustomize k8s/monitoring builds the PrometheusRule and the Grafana sidecar ConfigMap", () => {
    const tools = kubeTools();
    const out = execFileSync(tools.kubectl, ["kustomize", MONITORING], { encoding: "utf8", env: tools.env });
    const objects = parseAllDocuments(out).map((d) => d.toJS() as { kind: string; metadata: { name: string; labels?: Record<string, string> }; data?: Record<string, string> });
    expect(objects.map((o) => o.kind).sort()).to.deep.equal(["ConfigMap", "PrometheusRule"]);
    const configMap = objects.find((o) => o.kind === "ConfigMap")!;
    expect(configMap.metadata.labels).to.include({ grafana_dashboard: "1" });
    expect(JSON.parse(configMap.data!["realtime-gateway.json"]!)).to.deep.equal(dashboard());
  });
});
