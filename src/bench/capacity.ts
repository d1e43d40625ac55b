/**
 * The capacity model: from one measured run (CPU per delivered event, memory per connection, the
 * CPU Redis and PostgreSQL spent per committed event) to instances, cores and memory for 1,000 /
 * 10,000 / 100,000 users at a stated event rate, priced on the sheet in bench/prices.json.
 * Linear extrapolation from one machine: it says where the cost grows, not a guarantee.
 */
import { readFileSync } from "node:fs";
import { roleCpu } from "./meter.js";
import type { TargetResult } from "./run-load.js";

export interface PriceSheet {
  name: string;
  source: string;
  vcpuHour: number;
  gbHour: number;
  hoursPerMonth: number;
  currency: string;
  assumptions: {
    targetCpuUtilization: number;
    vcpuPerInstance: number;
    maxConnectionsPerInstance: number;
    minInstances: number;
    minServiceVcpu: number;
    minServiceGb: number;
    memoryHeadroom: number;
  };
}

export interface Measured {
  /** subscribers per ticket in the run */
  fanout: number;
  gatewayCpuMsPerDelivery: number;
  gatewayCpuMsPerConnect: number;
  gatewayBytesPerConnection: number;
  gatewayBaseBytes: number;
  redisCpuMsPerEvent: number;
  postgresCpuMsPerEvent: number;
  postgresBytes: number;
  redisBytes: number;
}

export interface Sizing {
  users: number;
  eventsPerSec: number;
  deliveriesPerSec: number;
  gateway: { instances: number; vcpu: number; memoryGb: number };
  redis: { vcpu: number; memoryGb: number };
  postgres: { vcpu: number; memoryGb: number };
  monthlyCost: number;
  costPer1000Users: number;
}

export interface CapacityModel {
  prices: PriceSheet;
  eventsPerSecPer1000Users: number;
  measured: Measured;
  sizes: Sizing[];
}

export function loadPrices(path: string): PriceSheet {
  return JSON.parse(readFileSync(path, "utf8")) as PriceSheet;
}

export function measure(result: TargetResult, tickets: number, memory: { redisBytes: number; postgresBytes: number }): Measured | undefined {
  const step = result.steps[0];
  if (!step || step.deliveries === 0) return undefined;
  const connected = Math.max(1, result.connect.connected);
  const instances = Object.values(result.rssPerConnection);
  const perConn = instances.length ? instances.reduce((s, r) => s + r.bytesPerConnection, 0) / instances.length : NaN;
  const base = instances.length ? instances.reduce((s, r) => s + r.before, 0) / instances.length : NaN;
  const events = Math.max(1, step.committed);
  return {
    fanout: connected / tickets,
    gatewayCpuMsPerDelivery: roleCpu(step.cpu, "gateway") / step.deliveries,
    gatewayCpuMsPerConnect: roleCpu(result.connect.cpu, "gateway") / connected,
    gatewayBytesPerConnection: perConn,
    gatewayBaseBytes: base,
    redisCpuMsPerEvent: roleCpu(step.cpu, "redis") / events,
    postgresCpuMsPerEvent: roleCpu(step.cpu, "postgres") / events,
    postgresBytes: memory.postgresBytes,
    redisBytes: memory.redisBytes,
  };
}

const GB = 1024 ** 3;
const quarter = (v: number, min: number) => Math.max(min, Math.ceil(v * 4) / 4);

export function sizeFor(users: number, ratePer1000: number, m: Measured, prices: PriceSheet): Sizing {
  const a = prices.assumptions;
  const eventsPerSec = (ratePer1000 * users) / 1000;
  const deliveriesPerSec = eventsPerSec * m.fanout;
  const gatewayCores = (deliveriesPerSec * m.gatewayCpuMsPerDelivery) / 1000 / a.targetCpuUtilization;
  const instances = Math.max(a.minInstances, Math.ceil(users / a.maxConnectionsPerInstance), Math.ceil(gatewayCores / a.vcpuPerInstance));
  const gatewayVcpu = instances * a.vcpuPerInstance;
  const gatewayGb = quarter(((instances * m.gatewayBaseBytes + users * m.gatewayBytesPerConnection) * a.memoryHeadroom) / GB, a.minServiceGb);
  const redisVcpu = quarter((eventsPerSec * m.redisCpuMsPerEvent) / 1000 / a.targetCpuUtilization, a.minServiceVcpu);
  const postgresVcpu = quarter((eventsPerSec * m.postgresCpuMsPerEvent) / 1000 / a.targetCpuUtilization, a.minServiceVcpu);
  const redisGb = quarter((m.redisBytes * a.memoryHeadroom) / GB, a.minServiceGb);
  const postgresGb = quarter((m.postgresBytes * a.memoryHeadroom) / GB, a.minServiceGb);
  const vcpu = gatewayVcpu + redisVcpu + postgresVcpu;
  const gb = gatewayGb + redisGb + postgresGb;
  const monthlyCost = (vcpu * prices.vcpuHour + gb * prices.gbHour) * prices.hoursPerMonth;
  return {
    users,
    eventsPerSec,
    deliveriesPerSec,
    gateway: { instances, vcpu: gatewayVcpu, memoryGb: gatewayGb },
    redis: { vcpu: redisVcpu, memoryGb: redisGb },
    postgres: { vcpu: postgresVcpu, memoryGb: postgresGb },
    monthlyCost,
    costPer1000Users: monthlyCost / (users / 1000),
  };
}

export function capacityModel(m: Measured, ratePer1000: number, prices: PriceSheet): CapacityModel {
  return { prices, eventsPerSecPer1000Users: ratePer1000, measured: m, sizes: [1000, 10_000, 100_000].map((u) => sizeFor(u, ratePer1000, m, prices)) };
}
