import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Cluster, Device } from "../src/cluster/types.js";
import { ArgumentError } from "../src/errors.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";
import { probeWorker } from "../src/runtime/coordinator/probe.js";
import {
  cpuQuotaPeriodUs,
  netnsUnavailable,
  readTestbedState,
  testbedDown,
  testbedUp,
} from "../src/harness/testbed.js";
import { testbedPrefix } from "./helpers/testbed-prefix.js";

/**
 * The least time of three lone sends of `bytes` from namespace `fromNs` to a listener in `toNs` at `addr`
 * (each after 200 ms idle, until the listener acknowledges every byte), ms.
 */
async function loneSendMs(toNs: string, fromNs: string, addr: string, bytes: number): Promise<number> {
  const server = spawn(
    "ip",
    [
      "netns",
      "exec",
      toNs,
      process.execPath,
      "-e",
      `const s=require("net").createServer(c=>{let n=0;c.on("data",d=>{n+=d.length;while(n>=${bytes}){n-=${bytes};c.write("k")}})}).listen(5599,"${addr}",()=>console.log("up"))`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    await new Promise<void>((resolve) => server.stdout!.once("data", () => resolve()));
    const client = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        fromNs,
        process.execPath,
        "-e",
        `const c=require("net").connect(5599,"${addr}");c.setNoDelay(true);const b=Buffer.alloc(${bytes});const ts=[];` +
          `const one=()=>setTimeout(()=>{const t=performance.now();c.write(b);c.once("data",()=>{ts.push(performance.now()-t);ts.length<3?one():(console.log(Math.min(...ts)),c.end())})},200);c.on("connect",one)`,
      ],
      { encoding: "utf8", timeout: 10000 },
    );
    const ms = Number(client.stdout.trim());
    assert.ok(Number.isFinite(ms), `lone send: ${client.stdout}${client.stderr}`);
    return ms;
  } finally {
    server.kill();
  }
}

function device(name: string, extra: Partial<Device> = {}): Device {
  return {
    name,
    kind: "cpu",
    macsPerSecond: { float32: 1e10 },
    memoryBandwidth: 1e10,
    memory: 1e9,
    idlePower: 1,
    activePower: 2,
    ...extra,
  };
}

function cluster(devices: Device[], bandwidth: number, latency: number): Cluster {
  return {
    name: "tb",
    devices,
    links: [{ devices: devices.map((d) => d.name), kind: "ethernet", bandwidth, latency, energyPerBit: 0 }],
    inputDevice: devices[0].name,
    outputDevice: devices[devices.length - 1].name,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function run(cmd: string[]): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const noNetns = netnsUnavailable();

/** A temp folder for a testbed's state, removed when the test process exits. */
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cleave-tb-"));
  process.once("exit", () => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("CPU quota periods: 10 ms, longer where the quota would fall under the kernel's 1 ms floor", () => {
  assert.equal(cpuQuotaPeriodUs(0.5), 10000);
  assert.equal(cpuQuotaPeriodUs(0.125), 10000);
  assert.equal(cpuQuotaPeriodUs(3), 10000);
  // 5% of a core: 10 ms would give a 0.5 ms quota, which cgroup v1 refuses.
  assert.equal(cpuQuotaPeriodUs(0.05), 20000);
  for (const share of [0.01, 0.03, 0.07, 0.099, 0.25])
    assert.ok(Math.round(share * cpuQuotaPeriodUs(share)) >= 1000, `share ${share}`);
});

test("loopback fallback: workers on 127.0.0.1, state saved, down stops them", async () => {
  const stateFile = join(tempDir(), "state.json");
  const tb = await testbedUp(cluster([device("a"), device("b")], 12.5e6, 0.001), {
    stateFile,
    loopback: true,
    prefix: "cltl",
  });
  assert.equal(tb.state.mode, "loopback");
  assert.ok(tb.state.notes.some((n) => n.startsWith("no namespaces: loopback requested")));
  assert.deepEqual(tb.coordinatorExec, []);
  assert.equal(tb.linkDelayMs("a", "b"), 1);
  // A device's path to the coordinator stands for its link to the output device (b).
  assert.equal(tb.linkDelayMs("a", "coordinator"), 1);
  assert.equal(tb.linkDelayMs("b", "coordinator"), 0);
  assert.equal(tb.linkDelayMs("coordinator", "b"), 0);
  for (const w of tb.workers) assert.match(w.endpoint, /^127\.0\.0\.1:\d+$/);
  const r = await probeWorker(tb.workers[0].endpoint, {
    token: tb.token,
    bytes: 2 ** 20,
    pings: 3,
    rounds: 1,
  });
  assert.equal(r.worker, "a");
  assert.ok(r.mibPerSecond > 0 && r.rttMs.p50 > 0);
  await tb.down();
  assert.equal(existsSync(stateFile), false);
  for (const pid of tb.state.pids) assert.equal(alive(pid), false);
});

test("namespaces, htb shaping and cgroup quotas; down removes everything", { skip: noNetns }, async () => {
  const stateFile = join(tempDir(), "state.json");
  const c = cluster([device("a", { cpuShare: 0.5 }), device("b", { cpuShare: 1 })], 12.5e6, 0.002);
  const p = testbedPrefix("tt");
  const tb = await testbedUp(c, { stateFile, prefix: p, subnet: 7 });
  try {
    assert.equal(tb.state.mode, "netns");
    assert.deepEqual(tb.coordinatorExec, ["ip", "netns", "exec", `${p}-coord`]);
    assert.deepEqual(
      tb.workers.map((w) => w.endpoint.split(":")[0]),
      ["10.77.7.10", "10.77.7.11"],
    );
    const ns = run(["ip", "netns", "list"]);
    for (const n of [`${p}-coord`, `${p}-0`, `${p}-1`]) assert.match(ns, new RegExp(`^${n}\\b`, "m"));
    // The private range lives only inside the testbed's namespaces.
    assert.doesNotMatch(run(["ip", "-o", "addr"]), /10\.77\./);
    assert.match(
      run(["tc", "-n", `${p}-0`, "class", "show", "dev", "eth0"]),
      /class htb 1:11 .*rate 100Mbit/,
    );
    // Half a core over a 10 ms period: the quota arrives in short slices, as a slower processor would run.
    assert.equal(readFileSync(join(tb.state.cgroups[0], "cpu.cfs_period_us"), "utf8").trim(), "10000");
    assert.equal(readFileSync(join(tb.state.cgroups[0], "cpu.cfs_quota_us"), "utf8").trim(), "5000");
    // A whole core on a one-CPU worker: taskset bounds it, no quota (a quota there still throttles).
    assert.equal(readFileSync(join(tb.state.cgroups[1], "cpu.cfs_quota_us"), "utf8").trim(), "-1");
    const procs = readFileSync(join(tb.state.cgroups[0], "cgroup.procs"), "utf8");
    assert.ok(procs.split("\n").includes(String(tb.state.pids[0])), "worker a is not in its cgroup");
    assert.equal(tb.linkDelayMs("a", "b"), 2);
    // From the coordinator namespace the workers answer (token checked through the namespaces).
    const probe = (fromNs: string, endpoint: string) =>
      JSON.parse(
        run([
          "ip",
          "netns",
          "exec",
          fromNs,
          ...cliCommand(),
          "probe",
          endpoint,
          "--token",
          tb.token,
          "--json",
          "--mib",
          "2",
        ]),
      );
    const fromCoord = probe(`${p}-coord`, tb.workers[1].endpoint);
    assert.equal(fromCoord.worker, "b");
    // a's outputs reach the coordinator as they would reach the output device b; b's, unshaped.
    assert.match(run(["tc", "-n", `${p}-0`, "class", "show", "dev", "eth0"]), /class htb 1:9 .*rate 100Mbit/);
    assert.doesNotMatch(run(["tc", "-n", `${p}-1`, "class", "show", "dev", "eth0"]), /class htb 1:9 /);
    // Device a to device b goes through the 100 Mbit/s class: it cannot be much faster than 11.9 MiB/s.
    const shaped = probe(`${p}-0`, tb.workers[1].endpoint);
    assert.ok(shaped.mibPerSecond < 2 * (12.5e6 / 2 ** 20), `a -> b measured ${shaped.mibPerSecond} MiB/s`);
    // A lone tensor after the link idled pays for its bytes past the 1 ms bucket, packets being no larger
    // than it: 60 KiB took 0.3 ms through a 16 KiB bucket while eth0 handed htb 64 KiB segments.
    assert.match(run(["ip", "-n", `${p}-0`, "-d", "link", "show", "eth0"]), /gso_max_size 12500 /);
    assert.match(run(["tc", "-n", `${p}-0`, "class", "show", "dev", "eth0"]), /1:11 .*burst 12500b/);
    const lone = await loneSendMs(`${p}-1`, `${p}-0`, "10.77.7.11", 60 * 1024);
    const floor = ((60 * 1024 - 12500) / 12.5e6) * 1000;
    assert.ok(
      lone >= 0.9 * floor,
      `a lone 60 KiB a -> b took ${lone.toFixed(2)} ms, the link allows ${floor.toFixed(1)}`,
    );
    assert.equal(readTestbedState(stateFile)?.workers.length, 2);
    // A second testbed with the same prefix is refused before it makes anything; the first one keeps running.
    const other = join(tempDir(), "state.json");
    await assert.rejects(
      testbedUp(c, { stateFile: other, prefix: p, subnet: 6 }),
      new RegExp(`testbed: prefix '${p}' is in use \\(namespace '${p}-(coord|0|1)' exists\\)`),
    );
    assert.equal(existsSync(other), false);
    assert.match(run(["ip", "netns", "list"]), new RegExp(`^${p}-coord\\b`, "m"));
    assert.equal(probe(`${p}-coord`, tb.workers[0].endpoint).worker, "a");
  } finally {
    const removed = await tb.down();
    assert.ok(removed.includes(`namespace ${p}-coord`));
  }
  assert.doesNotMatch(run(["ip", "netns", "list"]), new RegExp(`${p}-`));
  for (const cg of tb.state.cgroups) assert.equal(existsSync(cg), false);
  for (const pid of tb.state.pids) assert.equal(alive(pid), false);
  assert.equal(existsSync(stateFile), false);
});

test("a failed up removes what it made", { skip: noNetns }, async () => {
  const stateFile = join(tempDir(), "state.json");
  // CPU 999 does not exist: taskset fails and the worker never listens.
  const c = cluster([device("a", { cpus: [999], cpuShare: 1 }), device("b")], 12.5e6, 0);
  const p = testbedPrefix("tf");
  await assert.rejects(
    testbedUp(c, { stateFile, prefix: p, subnet: 8 }),
    /worker a: exited before listening/,
  );
  assert.doesNotMatch(run(["ip", "netns", "list"]), new RegExp(`${p}-`));
  assert.equal(existsSync(`/sys/fs/cgroup/cpu/${p}-0`), false);
  assert.equal(existsSync(stateFile), false);
  assert.deepEqual(await testbedDown(stateFile), []);
});

test("the state lives in a folder of this user's own, readable by no one else, and is never followed through a link", async () => {
  const base = tempDir();
  const open = join(base, "open");
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  const linked = join(base, "linked");
  symlinkSync(tempDir(), linked);
  for (const dir of [open, linked]) {
    await assert.rejects(
      testbedUp(cluster([device("a")], 12.5e6, 0), { stateFile: join(dir, "state.json"), loopback: true }),
      (e: unknown) =>
        e instanceof ArgumentError &&
        e.message.startsWith(`${dir}: `) &&
        /symbolic link|opened by other users/.test(e.message),
    );
  }
  const stateFile = join(base, "own", "state.json");
  const tb = await testbedUp(cluster([device("a")], 12.5e6, 0), {
    stateFile,
    loopback: true,
    prefix: "cltp",
  });
  try {
    assert.equal(statSync(join(base, "own")).mode & 0o777, 0o700);
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
    assert.equal(tb.state.processes?.length, 1);
    assert.equal(tb.state.processes?.[0].pid, tb.state.pids[0]);
  } finally {
    await tb.down();
  }
});

test("down signals only processes it can prove it started", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  const other = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const pid = other.pid!;
    // A state whose worker id now belongs to another process (here: one started at another time).
    const state = {
      version: 1,
      prefix: "cltx",
      mode: "loopback",
      namespaces: [],
      cgroups: [],
      pids: [pid],
      processes: [{ pid, start: "1", cmd: "node cleave worker" }],
      workers: [],
      token: "t",
      linkDelayMs: {},
      notes: [],
      detached: true,
    };
    writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });
    const done = await testbedDown(stateFile);
    assert.ok(
      done.includes(`left process ${pid} alone (not the worker the testbed started)`),
      done.join("; "),
    );
    assert.equal(alive(pid), true);
    // A state file that is a link is not followed.
    const target = join(tempDir(), "state.json");
    writeFileSync(target, JSON.stringify(state), { mode: 0o600 });
    const link = join(dir, "link.json");
    symlinkSync(target, link);
    assert.throws(() => readTestbedState(link), /symbolic link/);
  } finally {
    other.kill("SIGKILL");
  }
});
