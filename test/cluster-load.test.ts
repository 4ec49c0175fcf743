import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCluster, parseCluster } from "../src/cluster/load.js";
import { CleaveError } from "../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-cluster-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// The repository's examples/clusters, from test/ (tsx) or dist/test/ (compiled).
const examplesDir = [
  join(import.meta.dirname, "..", "examples", "clusters"),
  join(import.meta.dirname, "..", "..", "examples", "clusters"),
].find((d) => existsSync(d))!;

function device(name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    kind: "cpu",
    throughput: "13.5 GFLOPS",
    memoryBandwidth: "12.8GB/s",
    memory: "3GiB",
    idlePower: "2.7W",
    activePower: "6.4W",
    ...extra,
  };
}

function base(): Record<string, unknown> & {
  devices: Record<string, unknown>[];
  links: Record<string, unknown>[];
} {
  return {
    name: "c",
    inputDevice: "a",
    outputDevice: "b",
    devices: [device("a"), device("b"), device("c")],
    links: [
      {
        devices: ["a", "b"],
        kind: "ethernet",
        bandwidth: "1Gbit/s",
        latency: "0.1ms",
        energyPerBit: "5nJ/bit",
      },
    ],
  };
}

type Mutation = (c: ReturnType<typeof base>) => void;

/** Each bad cluster and the one line it must produce. */
const BAD: Array<[string, Mutation, string]> = [
  [
    "wrong bytes",
    (c) => {
      c.devices[2].memory = "lots";
    },
    'c.yaml: devices[2].memory: expected bytes like "4GiB", got "lots"',
  ],
  [
    "unknown unit",
    (c) => {
      c.devices[1].memoryBandwidth = "3 furlongs/s";
    },
    'c.yaml: devices[1].memoryBandwidth: expected a bandwidth like "1Gbit/s", got "3 furlongs/s" (unknown unit "furlongs/s")',
  ],
  [
    "missing field",
    (c) => {
      delete c.devices[0].activePower;
    },
    'c.yaml: devices[0].activePower: missing (expected a power like "6.4W")',
  ],
  [
    "missing name",
    (c) => {
      delete c.devices[1].name;
    },
    "c.yaml: devices[1].name: missing (expected string)",
  ],
  [
    "wrong type",
    (c) => {
      c.devices[0].threads = "four";
    },
    'c.yaml: devices[0].threads: expected number, got "four"',
  ],
  [
    "wrong kind",
    (c) => {
      c.devices[0].kind = "tpu";
    },
    'c.yaml: devices[0].kind: expected one of cpu, gpu, npu, accelerator, browser, got "tpu"',
  ],
  [
    "unknown key",
    (c) => {
      c.devices[2].colour = "blue";
    },
    "c.yaml: devices[2]: unknown key 'colour'",
  ],
  [
    "unknown top-level key",
    (c) => {
      (c as Record<string, unknown>).nodes = [];
    },
    "c.yaml: (top level): unknown key 'nodes'",
  ],
  [
    "bad throughput",
    (c) => {
      c.devices[0].throughput = "fast";
    },
    'c.yaml: devices[0].throughput: expected a throughput like "13.5 GMAC/s", "27 GFLOPS" or { macsPerCycle: 168, clock: 200MHz }, got "fast"',
  ],
  [
    "throughput map without float32",
    (c) => {
      c.devices[0].throughput = { int8: "4 TOPS" };
    },
    'c.yaml: devices[0].throughput.float32: missing (expected a throughput like "13.5 GMAC/s")',
  ],
  [
    "bad clock",
    (c) => {
      c.devices[0].throughput = { macsPerCycle: 168, clock: "fast" };
    },
    'c.yaml: devices[0].throughput.clock: expected a frequency like "200MHz", got "fast"',
  ],
  [
    "link to unknown device",
    (c) => {
      c.links[0].devices = ["a", "z"];
    },
    'c.yaml: links[0].devices[1]: unknown device "z" (devices: a, b, c)',
  ],
  [
    "duplicate device",
    (c) => {
      c.devices[2].name = "a";
    },
    'c.yaml: devices[2].name: duplicate device name "a" (also devices[0])',
  ],
  [
    "unknown input device",
    (c) => {
      c.inputDevice = "cam";
    },
    'c.yaml: inputDevice: unknown device "cam" (devices: a, b, c)',
  ],
  [
    "unknown output device",
    (c) => {
      c.outputDevice = "sink";
    },
    'c.yaml: outputDevice: unknown device "sink" (devices: a, b, c)',
  ],
  [
    "link with one device",
    (c) => {
      c.links[0].devices = ["a"];
    },
    "c.yaml: links[0].devices: expected at least two device names",
  ],
  [
    "bad link latency",
    (c) => {
      c.links[0].latency = "soon";
    },
    'c.yaml: links[0].latency: expected a time like "0.2ms", got "soon"',
  ],
  [
    "bad endpoint",
    (c) => {
      c.devices[0].endpoint = "localhost";
    },
    'c.yaml: devices[0].endpoint: expected "host:port" like "127.0.0.1:7001"',
  ],
  [
    "bad coordinator CPU",
    (c) => {
      c.devices[0].coordinatorCpu = "a bit";
    },
    'c.yaml: devices[0].coordinatorCpu: expected a time like "0.2ms", got "a bit"',
  ],
  [
    "bandwidth without a unit",
    (c) => {
      c.links[0].bandwidth = 750;
    },
    'c.yaml: links[0].bandwidth: expected a bandwidth like "1Gbit/s", got 750 (a number without a unit: write the unit, like "1Gbit/s")',
  ],
  [
    "bandwidth string without a unit",
    (c) => {
      c.links[0].bandwidth = "750";
    },
    'c.yaml: links[0].bandwidth: expected a bandwidth like "1Gbit/s", got "750" (no unit: write the unit, like "1Gbit/s")',
  ],
  [
    "negative memory",
    (c) => {
      c.devices[1].memory = "-3GiB";
    },
    'c.yaml: devices[1].memory: expected bytes like "4GiB", got "-3GiB" (negative: expected a value >= 0)',
  ],
  [
    "unknown unit",
    (c) => {
      c.devices[1].memory = "3GQ";
    },
    'c.yaml: devices[1].memory: expected bytes like "4GiB", got "3GQ" (unknown unit "GQ")',
  ],
  [
    "throughput without a unit",
    (c) => {
      c.devices[0].throughput = 13.5e9;
    },
    'c.yaml: devices[0].throughput: expected a throughput like "13.5 GMAC/s", "27 GFLOPS" or { macsPerCycle: 168, clock: 200MHz }, got 13500000000 (a number without a unit: write the unit, like "13.5 GMAC/s")',
  ],
  [
    "clock without a unit",
    (c) => {
      c.devices[0].throughput = { macsPerCycle: 168, clock: 200e6 };
    },
    'c.yaml: devices[0].throughput.clock: expected a frequency like "200MHz", got 200000000 (a number without a unit: write the unit, like "200MHz")',
  ],
  [
    "devices not a list",
    (c) => {
      (c as Record<string, unknown>).devices = "a,b";
    },
    'c.yaml: devices: expected array, got "a,b"',
  ],
];

/** Every field that carries a unit, as a path into base(); each must refuse a bare number. */
const UNIT_FIELDS: Array<[string, (c: ReturnType<typeof base>, v: number) => void]> = [
  ["devices[0].throughput", (c, v) => (c.devices[0].throughput = v)],
  ["devices[0].memoryBandwidth", (c, v) => (c.devices[0].memoryBandwidth = v)],
  ["devices[0].memory", (c, v) => (c.devices[0].memory = v)],
  ["devices[0].idlePower", (c, v) => (c.devices[0].idlePower = v)],
  ["devices[0].activePower", (c, v) => (c.devices[0].activePower = v)],
  ["devices[0].transferCpu", (c, v) => (c.devices[0].transferCpu = v)],
  ["devices[0].coordinatorCpu", (c, v) => (c.devices[0].coordinatorCpu = v)],
  [
    "devices[0].coreClusters[0].throughput",
    (c, v) => (c.devices[0].coreClusters = [{ name: "big", cores: 4, throughput: v }]),
  ],
  [
    "devices[0].coreClusters[0].activePower",
    (c, v) =>
      (c.devices[0].coreClusters = [{ name: "big", cores: 4, throughput: "1 GMAC/s", activePower: v }]),
  ],
  ["links[0].bandwidth", (c, v) => (c.links[0].bandwidth = v)],
  ["links[0].latency", (c, v) => (c.links[0].latency = v)],
  ["links[0].energyPerBit", (c, v) => (c.links[0].energyPerBit = v)],
];

test("every unit-bearing cluster field refuses a bare number, naming the field", () => {
  for (const [field, set] of UNIT_FIELDS) {
    const c = base();
    set(c, 750);
    assert.throws(
      () => parseCluster(c, "c.yaml"),
      (e: unknown) =>
        e instanceof CleaveError &&
        e.code === "BAD_CONFIG" &&
        e.message.startsWith(`c.yaml: ${field}: expected `) &&
        e.message.includes("got 750 (a number without a unit"),
      field,
    );
  }
});

test("bad clusters fail with one line naming the file and field path", () => {
  for (const [what, mutate, message] of BAD) {
    const c = base();
    mutate(c);
    assert.throws(
      () => parseCluster(c, "c.yaml"),
      (err: unknown) => {
        assert.ok(err instanceof CleaveError, what);
        assert.equal(err.code, "BAD_CONFIG", what);
        assert.equal(err.message, message, what);
        assert.ok(!err.message.includes("\n"), what);
        return true;
      },
      what,
    );
  }
});

test("a valid cluster converts units and keeps optional fields", () => {
  const c = base();
  c.devices[0] = device("a", {
    throughput: { float32: "27 GFLOPS", int8: { macsPerCycle: 1024, clock: "200MHz" } },
    coreClusters: [
      { name: "big", cores: 4, throughput: "10 GMAC/s", activePower: "4W" },
      { name: "little", cores: 4, throughput: "2 GMAC/s" },
    ],
    endpoint: "10.0.0.2:7001",
    cpus: "0-1,3",
    cpuShare: 0.5,
    threads: 2,
    profile: "profiles/a.json",
    host: "box",
    coRunSlowdown: 1.2,
    transferCpu: "1.5ns/B",
    coordinatorCpu: "0.45ms",
  });
  (c as Record<string, unknown>).constraints = { maxLatency: "50ms", anything: [1, 2] };
  const cl = parseCluster(c, "c.yaml", { baseDir: "/clusters" });
  const a = cl.devices[0];
  assert.deepEqual(a.macsPerSecond, { float32: 13.5e9, int8: 204.8e9 });
  assert.equal(a.memory, 3 * 2 ** 30);
  assert.equal(a.memoryBandwidth, 12.8e9);
  assert.deepEqual(a.coreClusters, [
    { name: "big", cores: 4, macsPerSecond: 10e9, activePower: 4 },
    { name: "little", cores: 4, macsPerSecond: 2e9 },
  ]);
  assert.deepEqual(a.cpus, [0, 1, 3]);
  assert.equal(a.profile, "/clusters/profiles/a.json");
  assert.equal(a.endpoint, "10.0.0.2:7001");
  assert.deepEqual([a.host, a.coRunSlowdown], ["box", 1.2]);
  assert.ok(Math.abs(a.transferCpu! - 1.5e-9) < 1e-20 && Math.abs(a.coordinatorCpu! - 4.5e-4) < 1e-15);
  assert.deepEqual(cl.links[0], {
    devices: ["a", "b"],
    kind: "ethernet",
    bandwidth: 125e6,
    latency: 1e-4,
    energyPerBit: 5e-9,
  });
  assert.deepEqual(cl.constraints, { maxLatency: "50ms", anything: [1, 2] });
  assert.equal(cl.devices[1].coreClusters, undefined);
});

test("loadCluster reads YAML and JSON and names the file in errors", () => {
  const good = join(dir, "good.json");
  writeFileSync(good, JSON.stringify(base()));
  assert.equal(loadCluster(good).devices.length, 3);
  const yaml = join(dir, "bad.yaml");
  writeFileSync(yaml, "name: x\ninputDevice: a\noutputDevice: a\ndevices:\n  - name: a\n    kind: cpu\n");
  assert.throws(() => loadCluster(yaml), {
    message: `${yaml}: devices[0].throughput: missing (expected a throughput like "13.5 GMAC/s") (and 4 more)`,
  });
  const broken = join(dir, "broken.yaml");
  writeFileSync(broken, "devices: [\n");
  assert.throws(
    () => loadCluster(broken),
    (e: Error) => e.message.startsWith(`${broken}: not valid YAML/JSON`),
  );
  assert.throws(() => loadCluster(join(dir, "nope.yaml")), {
    message: `${join(dir, "nope.yaml")}: no such cluster file`,
  });
});

test("the example clusters load, with the figures their comments derive", () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));
  assert.deepEqual(files.sort(), [
    "accel-pair.yaml",
    "camera-server.yaml",
    "edge-mix.yaml",
    "equal-pair.yaml",
    "hetero-pair.yaml",
    "local.yaml",
    "pi4-pair.yaml",
  ]);
  const byName = Object.fromEntries(files.map((f) => [f, loadCluster(join(examplesDir, f))]));
  const accel = byName["accel-pair.yaml"];
  assert.equal(accel.devices.find((d) => d.name === "eyeriss")!.macsPerSecond.float32, 33.6e9);
  assert.equal(accel.devices.find((d) => d.name === "simba")!.macsPerSecond.int8, 204.8e9);
  assert.equal(accel.links[0].bandwidth, 125e6);
  const pi = byName["pi4-pair.yaml"];
  assert.equal(pi.devices[0].macsPerSecond.float32, 6.75e9);
  const local = byName["local.yaml"];
  assert.deepEqual(
    local.devices.map((d) => [d.cpus, d.threads]),
    [
      [[0], 1],
      [[1], 1],
    ],
  );
  assert.equal(local.links[0].kind, "loopback");
  const camera = byName["camera-server.yaml"];
  assert.equal(camera.devices.find((d) => d.name === "camera")!.cpuShare, 0.125);
  assert.equal(camera.links[0].bandwidth, 20e6 / 8);
  assert.deepEqual([camera.inputDevice, camera.outputDevice], ["camera", "server"]);
  const hetero = byName["hetero-pair.yaml"];
  assert.deepEqual(
    hetero.devices.map((d) => [d.name, d.cpuShare, d.macsPerSecond.float32]),
    [
      ["fast", 1, 52e9],
      ["slow", 0.25, 13e9],
    ],
  );
  assert.equal(hetero.links[0].bandwidth, 12.5e6);
  const equal = byName["equal-pair.yaml"];
  assert.deepEqual(
    equal.devices.map((d) => [d.name, d.cpus, d.cpuShare]),
    [
      ["a", [0], 1],
      ["b", [1], 1],
    ],
  );
  assert.equal(equal.links[0].bandwidth, 125e6);
  const mix = byName["edge-mix.yaml"];
  assert.equal(mix.devices.length, 4);
  assert.ok(mix.links.some((l) => l.kind === "wifi" && l.devices.length === 4));
});
