import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cliCommand, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";

/**
 * `cleave run` ended early, by a worker killed mid-run or by SIGINT/SIGTERM, with real worker processes: the
 * JSON report still comes with the counts so far and names the device, and the temporary folder the run
 * wrote its stage files into is empty afterwards.
 */

/** A running `cleave run` in its own temporary folder; resolves `measuring` 2 s after its progress says so. */
function startRun(args: string[]) {
  const tmp = mkdtempSync(join(tmpdir(), "cleave-run-test-"));
  const [cmd, ...pre] = cliCommand();
  const child = spawn(cmd, [...pre, "run", ...args], {
    env: { ...process.env, TMPDIR: tmp, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  let onMeasuring: () => void = () => {};
  const measuring = new Promise<void>((r) => {
    onMeasuring = r;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
    // The step's line can come as it starts: give it time to answer some requests.
    if (/measuring/.test(stderr)) setTimeout(onMeasuring, 2000);
  });
  const exited = once(child, "exit").then(([code, signal]) => ({ code, signal }));
  return {
    child,
    tmp,
    measuring,
    exited,
    out: () => stdout,
    err: () => stderr,
  };
}

/** What cleave left in a temporary folder (other tools of this machine may write theirs there too). */
const cleaveFiles = (dir: string) => readdirSync(dir).filter((f) => f.startsWith("cleave-"));

/** Pids of the processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const r = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const MODEL = "zoo:squeezenet1_1";

test("a worker killed with SIGKILL mid-run: the JSON report comes, names the device, the stage files go", async (t) => {
  const cluster = await startLocalWorkers([{ name: "core0" }, { name: "core1" }]);
  t.after(() => cluster.stop());
  const run = startRun([
    MODEL,
    "--stages",
    "2",
    "--requests",
    "100000",
    "--json",
    // Recovery would move its stage to the device left (test/chaos-kill.test.ts); here the run must end.
    "--no-recover",
    "--workers",
    cluster.workers.map((w) => `${w.name}=${w.endpoint}`).join(","),
    "--token",
    cluster.token,
  ]);
  t.after(() => {
    run.child.kill("SIGKILL");
    rmSync(run.tmp, { recursive: true, force: true });
  });
  await run.measuring;
  assert.ok(cleaveFiles(run.tmp).length > 0, "the run wrote its stage files into its temporary folder");
  process.kill(cluster.pids[1], "SIGKILL");
  const { code } = await run.exited;
  assert.equal(code, 1, run.err());
  const r = JSON.parse(run.out());
  assert.equal(r.stopped.reason, "error");
  assert.equal(r.stopped.device, "core1");
  assert.equal(r.stopped.during, "measuring");
  assert.match(r.stopped.message, /^worker core1 \(stage 1\)/);
  assert.doesNotMatch(r.stopped.message, /^127\.0\.0\.1/);
  assert.ok(r.report.completed > 0, "requests answered before the kill are counted");
  assert.ok(r.report.completed + r.report.failed < 100000, "requests never sent are not counted as failed");
  assert.match(run.err(), /^error: worker core1 \(stage 1\)/m);
  assert.deepEqual(cleaveFiles(run.tmp), [], "the temporary folder is empty afterwards");
});

for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  test(`${signal} mid-run: the counts so far are reported, the workers stop, the stage files go`, async (t) => {
    const run = startRun([MODEL, "--stages", "2", "--requests", "100000", "--json", "--deadline", "20000"]);
    t.after(() => {
      run.child.kill("SIGKILL");
      rmSync(run.tmp, { recursive: true, force: true });
    });
    await run.measuring;
    const workers = childrenOf(run.child.pid!);
    assert.ok(workers.length >= 2, `the run started its local workers (${workers})`);
    run.child.kill(signal);
    const exit = await run.exited;
    assert.equal(exit.code, code, run.err());
    const r = JSON.parse(run.out());
    assert.equal(r.stopped.reason, "interrupted");
    assert.equal(r.stopped.signal, signal);
    assert.ok(r.report.completed > 0);
    assert.ok(r.report.completed + r.report.failed < 100000);
    assert.deepEqual(cleaveFiles(run.tmp), [], "the temporary folder is empty afterwards");
    for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} was stopped`);
  });
}

test("--deadline takes a positive integer, in one line", async (t) => {
  const run = startRun([MODEL, "--stages", "2", "--deadline", "0"]);
  t.after(() => rmSync(run.tmp, { recursive: true, force: true }));
  const { code } = await run.exited;
  assert.equal(code, 2);
  assert.equal(run.err().trim(), "error: --deadline: expected an integer >= 1, got '0'");
});

test("--adapt with one device, a threshold outside (0, 1), a heartbeat of 0: one line each", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-adapt-flags-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const one = join(dir, "one.yaml");
  writeFileSync(
    one,
    "name: one\ninputDevice: solo\noutputDevice: solo\nlinks: []\ndevices:\n  - {name: solo, kind: cpu, throughput: 52 GMAC/s, memoryBandwidth: 20GB/s, memory: 4GiB, idlePower: 1W, activePower: 3W, cpus: [0], threads: 1}\n",
  );
  const cases: Array<[string[], string]> = [
    [
      ["--stages", "1", "--cluster", one, "--adapt"],
      "error: --adapt: cluster one has one device (solo); re-partitioning needs two or more",
    ],
    [
      ["--stages", "2", "--adapt", "--adapt-threshold", "1.5"],
      "error: --adapt-threshold: expected a number in (0, 1), got 1.5",
    ],
    [
      ["--stages", "2", "--adapt", "--adapt-threshold", "0"],
      "error: --adapt-threshold: expected a number in (0, 1), got 0",
    ],
    [["--stages", "2", "--heartbeat-ms", "0"], "error: --heartbeat-ms: expected an integer >= 1, got '0'"],
  ];
  for (const [args, line] of cases) {
    const run = startRun([MODEL, ...args]);
    const { code } = await run.exited;
    rmSync(run.tmp, { recursive: true, force: true });
    assert.equal(code, 2, run.err());
    assert.equal(run.err().trim(), line);
  }
});
