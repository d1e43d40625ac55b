import { resolve } from "node:path";
import { expect } from "chai";
import { profileArgs } from "../src/bench/gateways.js";
import { sizeFor, type Measured, type PriceSheet } from "../src/bench/capacity.js";
import { parseBenchArgs, publicOptions } from "../src/bench/options.js";

describe("bench options", () => {
  it("takes the scenario file's defaults and lets flags override them", () => {
    const steady = parseBenchArgs(["--clients", "10000", "--tickets", "1000", "--rate", "500", "--duration", "20s"], {});
    expect(steady).to.include({ scenario: "steady", clients: 10000, tickets: 1000, rate: 500, durationMs: 20_000, instances: 2, bare: true, gateway: true });
    const ramp = parseBenchArgs(["--scenario", "ramp"], {});
    expect(ramp.steps).to.deep.equal([100, 200, 500, 1000, 2000, 4000]);
    expect(parseBenchArgs(["--scenario", "hot", "--tickets", "50"], {}).tickets).to.equal(1);
  });

  it("--cpu-prof DIR profiles each gateway and bare server into an absolute directory", () => {
    expect(parseBenchArgs([], {}).cpuProf).to.equal(undefined);
    expect(parseBenchArgs(["--cpu-prof", "prof"], {}).cpuProf).to.equal(resolve("prof"));
    expect(profileArgs("gateway-1", "/tmp/p")).to.deep.equal(["--cpu-prof", "--cpu-prof-dir=/tmp/p", "--cpu-prof-name=gateway-1.cpuprofile", "--heapsnapshot-signal=SIGUSR2", "--diagnostic-dir=/tmp/p"]);
    expect(profileArgs("gateway-1", undefined)).to.deep.equal([]);
  });

  it("refuses what cannot run, naming the flag", () => {
    expect(() => parseBenchArgs(["--scenario", "burst"], {})).to.throw(/--scenario must be one of steady, ramp, hot, storm, writers/);
    expect(() => parseBenchArgs(["--duration", "soon"], {})).to.throw(/--duration must be a duration/);
    expect(() => parseBenchArgs(["--scenario", "storm", "--instances", "1"], {})).to.throw(/storm needs --instances 2/);
    expect(() => parseBenchArgs(["--url", "http://gw:3000"], {})).to.throw(/--url needs --database-url/);
    expect(() => parseBenchArgs(["--url", "http://gw:3000", "--database-url", "postgres://db/x"], {})).to.throw(/JWT_SECRET/);
    expect(() => parseBenchArgs(["--no-bare", "--no-gateway"], {})).to.throw(/nothing to measure/);
    expect(parseBenchArgs(["--url", "http://gw:3000", "--database-url", "postgres://db/x"], { JWT_SECRET: "s".repeat(32) }).url).to.deep.equal(["http://gw:3000"]);
  });
});

describe("bench result redaction", () => {
  it("keeps the JWT secret and the database password out of the command and the options it records", () => {
    const options = parseBenchArgs(["--url", "http://gw:3000", "--database-url", "postgres://app:hunter2@db:5432/x", "--jwt-secret", "s3cr3t-s3cr3t-s3cr3t"], {});
    expect(options.command).to.equal("realtime-gateway bench --url http://gw:3000 --database-url postgres://app:***@db:5432/x --jwt-secret ***");
    const recorded = JSON.stringify(publicOptions(options));
    expect(recorded).to.not.include("hunter2").and.not.include("s3cr3t");
    expect(options.jwtSecret).to.equal("s3cr3t-s3cr3t-s3cr3t");
  });
});

describe("bench capacity model", () => {
  const prices: PriceSheet = {
    name: "test",
    source: "",
    vcpuHour: 0.04,
    gbHour: 0.005,
    hoursPerMonth: 730,
    currency: "USD",
    assumptions: { targetCpuUtilization: 0.5, vcpuPerInstance: 1, maxConnectionsPerInstance: 10_000, minInstances: 2, minServiceVcpu: 0.25, minServiceGb: 0.5, memoryHeadroom: 1 },
  };
  const measured: Measured = {
    fanout: 10,
    gatewayCpuMsPerDelivery: 0.1,
    gatewayCpuMsPerConnect: 1,
    gatewayBytesPerConnection: 32 * 1024,
    gatewayBaseBytes: 100 * 1024 ** 2,
    redisCpuMsPerEvent: 0.05,
    postgresCpuMsPerEvent: 1,
    postgresBytes: 256 * 1024 ** 2,
    redisBytes: 16 * 1024 ** 2,
  };

  it("sizes from CPU per delivery, connections per instance and memory per connection", () => {
    const s = sizeFor(100_000, 10, measured, prices);
    expect(s.eventsPerSec).to.equal(1000);
    expect(s.deliveriesPerSec).to.equal(10_000);
    // 10,000 deliveries/s × 0.1 ms = 1 core, at 50% utilisation 2 cores; but 100,000 users need 10 instances
    expect(s.gateway.instances).to.equal(10);
    // 1000 ev/s × 1 ms = 1 core / 0.5 = 2 vCPU
    expect(s.postgres.vcpu).to.equal(2);
    // 10 × 100 MB + 100,000 × 32 KB = 4.03 GB, rounded up to the quarter
    expect(s.gateway.memoryGb).to.equal(4.25);
    const vcpu = 10 + 0.25 + 2;
    const gb = 4.25 + 0.5 + 0.5;
    expect(s.monthlyCost).to.be.closeTo((vcpu * 0.04 + gb * 0.005) * 730, 1e-9);
  });

  it("keeps the minimum of two instances for a small deployment", () => {
    expect(sizeFor(1000, 10, measured, prices).gateway.instances).to.equal(2);
  });
});
