import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { emulatedProfile } from "../src/cli/cmd-bench.js";
import { main } from "../src/cli/main.js";
import { takeTestbedFlag } from "../src/cli/testbed-flag.js";
import { loadCluster } from "../src/cluster/load.js";
import { type Profile, scaleProfile } from "../src/cost/profile.js";
import { defaultStateFile, netnsUnavailable, testbedUp } from "../src/harness/testbed.js";
import { cleave } from "./helpers/cli.js";
import { testbedPrefix } from "./helpers/testbed-prefix.js";

// The repository's examples/clusters, from test/ (tsx) or dist/test/ (compiled).
const examples = [
  join(import.meta.dirname, "..", "examples", "clusters"),
  join(import.meta.dirname, "..", "..", "examples", "clusters"),
].find((d) => existsSync(join(d, "hetero-pair.yaml")))!;
const heteroPair = join(examples, "hetero-pair.yaml");
const local = join(examples, "local.yaml");

const noNetns = netnsUnavailable();

/** A temp folder for a testbed's state, removed when the test process exits. */
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cleave-tbb-"));
  process.once("exit", () => rmSync(d, { recursive: true, force: true }));
  return d;
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false }, out, err };
}

function namespaces(): string {
  const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return r.stdout ?? "";
}

interface BenchJson {
  rows: Array<{ name: string; devices: string[]; measured: { failed: number }; maxRelativeDiff: number }>;
  plan: { single: { devices: string[][] } };
}

test("--testbed takes an optional state file", () => {
  const cases: Array<[string[], string[], string | undefined]> = [
    [["zoo:m", "--json"], ["zoo:m", "--json"], undefined],
    [["zoo:m", "--testbed"], ["zoo:m"], defaultStateFile()],
    [["zoo:m", "--testbed", "--json"], ["zoo:m", "--json"], defaultStateFile()],
    [["--testbed", "zoo:m"], ["zoo:m"], defaultStateFile()],
    [["--testbed", "m.onnx", "--json"], ["m.onnx", "--json"], defaultStateFile()],
    [["zoo:m", "--testbed", "/tmp/s.json", "--json"], ["zoo:m", "--json"], "/tmp/s.json"],
    [["--testbed=s.json", "zoo:m"], ["zoo:m"], "s.json"],
  ];
  for (const [argv, rest, file] of cases)
    assert.deepEqual(
      takeTestbedFlag(argv),
      file === undefined ? { argv: rest } : { argv: rest, stateFile: file },
    );
});

test("scaleProfile multiplies every time and says why; bench scales a device under a quota", () => {
  const p: Profile = {
    format: "cleave-profile",
    version: 1,
    model: { file: "m.onnx", nodes: 2, hash: "0".repeat(64) },
    device: { cpu: "cpu", cpus: 2, threads: 1, platform: "linux", arch: "x64", onnxruntime: "1" },
    inputShapes: { x: [1, 3] },
    warmup: 1,
    runs: 1,
    latency: { a: 0.001, b: 0.002 },
    fusedInto: { b: "a" },
    removed: [],
    blocked: [],
    standalone: { b: 0.0005 },
    unattributed: 0.0001,
    kernelTotal: 0.003,
    wholeRun: 0.004,
    scale: 1.05,
    overhead: { fixed: 1e-5, perByteIn: 1e-10, perByteOut: 2e-10, perByteLayout: 3e-10 },
  };
  const q = scaleProfile(p, 4, "cpuShare 0.25 of 1 thread(s)");
  assert.deepEqual(q.latency, { a: 0.004, b: 0.008 });
  assert.deepEqual(q.standalone, { b: 0.002 });
  assert.deepEqual([q.unattributed, q.kernelTotal, q.wholeRun, q.scale], [0.0004, 0.012, 0.016, 1.05]);
  assert.deepEqual(q.overhead, { fixed: 4e-5, perByteIn: 4e-10, perByteOut: 8e-10, perByteLayout: 1.2e-9 });
  assert.equal(q.device.cpu, "cpu (times x4: cpuShare 0.25 of 1 thread(s))");
  assert.equal(p.latency.a, 0.001, "the original is left as it was");
  assert.throws(() => scaleProfile(p, 0, "no"), /positive/);
  // cleave bench: hetero-pair's slow device (cpuShare 0.25, 1 thread) gets the local profile x4, fast as is.
  const [fast, slow] = loadCluster(heteroPair).devices;
  assert.equal(emulatedProfile(fast, p, 1), p);
  const s = emulatedProfile(slow, p, 1)!;
  assert.deepEqual(s.latency, { a: 0.004, b: 0.008 });
  assert.match(
    s.device.cpu,
    /^cpu \(times x4: scaled from the local measurement by the CPU quota of slow, cpuShare 0\.25/,
  );
  assert.equal(emulatedProfile(slow, p, 2), undefined, "a profile at another thread count is not used");
  assert.equal(emulatedProfile({ ...slow, cpuShare: 2, threads: 2 }, p, 2), p);
  assert.equal(emulatedProfile({ ...slow, cpuShare: 1, threads: 2 }, p, 2)!.wholeRun, 0.008);
});

test("--testbed without a testbed is one line naming the state file", () => {
  const state = join(tempDir(), "none", "state.json");
  const r = cleave(["bench", "zoo:squeezenet1_1", "--cluster", heteroPair, "--testbed", state, "--json"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: --testbed: no testbed is up \(no state file .*none\/state\.json;/);
  assert.ok(lines[0].includes(state));
});

/** `cleave run --json` of squeezenet1_1 in two stages on the hetero pair, 5 requests, with `testbed` flags. */
async function runOnHeteroPair(testbed: string[]) {
  const c = capture();
  const args = ["run", "zoo:squeezenet1_1", "--cluster", heteroPair, ...testbed];
  const code = await main([...args, "--stages", "2", "--requests", "5", "--json"], c.io);
  return { code, c };
}

test("loopback testbed: run goes in-process on its workers; a cluster of other devices is refused", async () => {
  const stateFile = join(tempDir(), "state.json");
  const tb = await testbedUp(loadCluster(heteroPair), { stateFile, loopback: true, prefix: "cltbl" });
  try {
    const wrong = capture();
    assert.equal(
      await main(
        ["run", "zoo:squeezenet1_1", "--cluster", local, "--testbed", stateFile, "--stages", "2"],
        wrong.io,
      ),
      2,
    );
    assert.equal(wrong.err.length, 1);
    assert.match(
      wrong.err[0],
      /^error: --testbed: device 'core0' of cluster local has no worker in the testbed of /,
    );
    const both = capture();
    assert.equal(
      await main(
        [
          "run",
          "zoo:squeezenet1_1",
          "--cluster",
          heteroPair,
          "--testbed",
          stateFile,
          "--workers",
          "fast=127.0.0.1:1",
        ],
        both.io,
      ),
      2,
    );
    assert.match(both.err[0], /drop --workers and --token/);
    const { code, c } = await runOnHeteroPair([`--testbed=${stateFile}`]);
    assert.equal(code, 0, c.err.join("\n"));
    const r = JSON.parse(c.out[0]);
    assert.deepEqual(r.devices, ["fast", "slow"]);
    assert.equal(r.report.failed, 0);
    assert.ok(r.maxRelativeDiff < 1e-4, `outputs differ by ${r.maxRelativeDiff}`);
    // The testbed's own workers served it (their pids), not workers started for the run.
    assert.deepEqual(Object.keys(r.stageBusyMs).sort(), ["fast", "slow"]);
  } finally {
    await tb.down();
  }
  assert.equal(existsSync(stateFile), false);
});

test("bench --testbed re-runs itself in the coordinator namespace and measures the hetero pair", {
  skip: noNetns,
}, async () => {
  const stateFile = join(tempDir(), "state.json");
  const p = testbedPrefix("tbb");
  const tb = await testbedUp(loadCluster(heteroPair), {
    stateFile,
    prefix: p,
    subnet: 9,
    detached: true,
  });
  try {
    assert.equal(tb.state.coordinatorNamespace, `${p}-coord`);
    for (const w of tb.workers) assert.match(w.endpoint, /^10\.77\.9\.\d+:\d+$/);
    const r = cleave(
      [
        "bench",
        "zoo:squeezenet1_1",
        "--cluster",
        heteroPair,
        "--testbed",
        stateFile,
        "--requests",
        "20",
        "--json",
      ],
      { timeoutMs: 300_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(r.stdout) as BenchJson;
    for (const name of ["plan", "single"]) {
      const row = b.rows.find((x) => x.name === name);
      assert.ok(row, `no ${name} row`);
      assert.equal(row.measured.failed, 0, `${name} failed requests`);
      assert.ok(row.maxRelativeDiff < 1e-4, `${name}: outputs differ by ${row.maxRelativeDiff}`);
    }
    // The slow device's profile is the local one scaled by its quota (x4), so the fast one wins alone.
    assert.deepEqual(b.plan.single.devices, [["fast"]]);
    // In-process caller: the namespaced child's output comes back through the caller's io.
    const { code, c } = await runOnHeteroPair(["--testbed", stateFile]);
    assert.equal(code, 0, c.err.join("\n"));
    const run = JSON.parse(c.out[0]);
    assert.equal(run.report.failed, 0);
    assert.deepEqual(run.devices, ["fast", "slow"]);
  } finally {
    await tb.down();
  }
  assert.doesNotMatch(namespaces(), new RegExp(`${p}-`));
  assert.equal(existsSync(stateFile), false);
});
