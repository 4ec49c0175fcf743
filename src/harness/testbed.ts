import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import type { Cluster, Device } from "../cluster/types.js";
import { ArgumentError, errorMessage, RuntimeFault } from "../errors.js";
import { writeOutputFile } from "../output-file.js";
import { hasTaskset, type LocalDevice, startLocalWorkers } from "../runtime/coordinator/local-cluster.js";
import { logger } from "../runtime/log.js";
import type { WorkerAddress } from "../runtime/coordinator/pipeline.js";
import type { TransportName } from "../runtime/transport/transport.js";
import type { RunMode } from "../runtime/worker/stage-runner.js";

const log = logger("runtime:testbed");

/**
 * The emulated edge cluster. Each device's worker runs in its own network namespace; a coordinator
 * namespace holds a bridge that joins them through veth pairs. Every device's egress is shaped with an
 * htb class per destination device at the cluster's link bandwidth; CPU is limited with a cgroup v1
 * `cpu.cfs_quota_us` proportional to `cpuShare` plus `taskset`. The private addresses (10.77.x.0/24)
 * exist only inside namespaces the testbed creates; the host's own namespace gets no address or route.
 * The coordinator stands in for the cluster's output device when it takes outputs: each device's path to it
 * is shaped (and delayed) as the device's link to the output device (unshaped where there is none).
 * There is no netem in this kernel: link latency is returned as user-space per-link delays for deploy().
 * Without root (or when namespaces fail) it falls back to loopback with taskset only, and says why.
 */
export interface TestbedOptions {
  /** Where the state lives, so `down` can undo everything (default $CLEAVE_TESTBED_STATE or <tmp>/cleave-testbed/state.json). */
  stateFile?: string;
  /** Prefix of namespace and cgroup names (default $CLEAVE_TESTBED_PREFIX or "cltb"; at most 6 characters). */
  prefix?: string;
  /** Third octet of the 10.77.N.0/24 subnet (default 0). */
  subnet?: number;
  token?: string;
  transport?: TransportName;
  /** Start workers as daemons that outlive this process (what `cleave testbed up` does). */
  detached?: boolean;
  /** Skip namespaces and cgroups even as root (loopback with taskset). */
  loopback?: boolean;
  /** Where the workers run their stages (`cleave worker --runs`; default auto). */
  runs?: RunMode;
}

/** What `up` made, as saved in the state file. */
export interface TestbedState {
  version: 1;
  prefix: string;
  /** "netns" when devices are in namespaces; "loopback" when it fell back. */
  mode: "netns" | "loopback";
  /** Namespace that can reach every worker (run the coordinator in it), when mode is "netns". */
  coordinatorNamespace?: string;
  namespaces: string[];
  cgroups: string[];
  pids: number[];
  /**
   * Each worker process as `up` found it once listening: its id, its start time (in clock ticks since boot,
   * from /proc) and its command line, so `down` signals only a process it can prove it started.
   */
  processes?: ProcessIdentity[];
  workers: WorkerAddress[];
  token: string;
  /**
   * User-space one-way delay per directed link `from>to` (worker names, and "coordinator": a device's path to
   * it stands for the link to the output device), ms.
   */
  linkDelayMs: Record<string, number>;
  /** The cluster's output device, whose links the devices' paths to the coordinator follow. */
  outputDevice?: string;
  /** Each device's eth0 GSO limit, bytes ({@link gsoMaxSize}; by device index; chaos only lowers it). */
  gsoMaxSize?: number[];
  /** What was limited how, and what could not be done. */
  notes: string[];
  /** True when the workers are daemons that outlive the process that started them. */
  detached: boolean;
}

/** A running testbed. */
export interface Testbed {
  state: TestbedState;
  workers: WorkerAddress[];
  token: string;
  /** Delay function for deploy()'s `linkDelayMs` option. */
  linkDelayMs: (from: string, to: string) => number;
  /** Prefix to run a command in the coordinator namespace (empty on loopback). */
  coordinatorExec: string[];
  /** Stops the workers and removes every namespace, interface and cgroup made. */
  down(): Promise<string[]>;
}

const CGROUP_CPU = "/sys/fs/cgroup/cpu";

/** Default state file path: in a folder of this user's own (`<tmp>/cleave-testbed-<uid>`), unless $CLEAVE_TESTBED_STATE. */
export function defaultStateFile(): string {
  return (
    process.env.CLEAVE_TESTBED_STATE ??
    join(tmpdir(), `cleave-testbed-${process.getuid?.() ?? "user"}`, "state.json")
  );
}

/** Default prefix of the testbed's namespace and cgroup names: $CLEAVE_TESTBED_PREFIX, else "cltb". */
export function defaultPrefix(): string {
  return process.env.CLEAVE_TESTBED_PREFIX || "cltb";
}

/** The network namespaces on this host, by name. */
function namespaceNames(): string[] {
  return sh(["ip", "netns", "list"], true)
    .out.split("\n")
    .map((l) => l.split(" ")[0])
    .filter(Boolean);
}

/**
 * Why `prefix` is taken on this host, or undefined when it is free: a namespace or CPU cgroup named
 * `<prefix>-...` already exists (another testbed is up with that prefix, or one was killed before `down`).
 * Checked before anything is made, so a second testbed never touches the first one's namespaces.
 */
export function prefixInUse(prefix: string): string | undefined {
  const mine = (name: string) => name.startsWith(`${prefix}-`);
  const ns = namespaceNames().find(mine);
  if (ns) return `namespace '${ns}' exists`;
  try {
    const cg = readdirSync(CGROUP_CPU).find(mine);
    if (cg) return `cgroup '${join(CGROUP_CPU, cg)}' exists`;
  } catch {
    // No cgroup v1 cpu hierarchy mounted: nothing of ours there.
  }
  return undefined;
}

/** A process as /proc shows it: enough to tell it from a later process that got the same id. */
export interface ProcessIdentity {
  pid: number;
  /** Start time, clock ticks after boot (field 22 of /proc/PID/stat). */
  start: string;
  /** Command line, arguments joined by spaces. */
  cmd: string;
}

/** The identity of a running process, or undefined when there is none with that id (or no /proc). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    return { pid, start: fields[19], cmd };
  } catch {
    return undefined;
  }
}

/**
 * Makes sure `dir` is a folder only this user can enter: created with mode 0700 when missing; refused when it
 * is a symbolic link, belongs to another user or is open to others (the state holds the workers' token).
 */
export function privateFolder(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dirname(dir), { recursive: true });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  const st = lstatSync(dir);
  const refuse = (why: string) =>
    new ArgumentError(
      `${dir}: ${why}; the testbed keeps its token there, so it needs a folder of its own (remove it, or set CLEAVE_TESTBED_STATE to a file in a private folder)`,
      { file: dir },
      "BAD_CONFIG",
    );
  if (st.isSymbolicLink()) throw refuse("is a symbolic link");
  if (!st.isDirectory()) throw refuse("is not a folder");
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw refuse(`belongs to uid ${st.uid}, not to this user (${uid})`);
  if ((st.mode & 0o077) !== 0)
    throw refuse(`can be opened by other users (mode ${(st.mode & 0o777).toString(8)})`);
}

function sh(cmd: string[], okFail = false): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
  const res = { ok: r.status === 0, out: r.stdout ?? "", err: (r.stderr ?? r.error?.message ?? "").trim() };
  if (!res.ok && !okFail)
    throw new RuntimeFault(
      "RUNTIME",
      `testbed: '${cmd.join(" ")}' failed: ${res.err.split("\n")[0] || `exit ${r.status}`}`,
    );
  log(`${cmd.join(" ")}${res.ok ? "" : ` -> ${res.err}`}`);
  return res;
}

function save(file: string, state: TestbedState): void {
  privateFolder(dirname(resolve(file)));
  writeOutputFile(file, JSON.stringify(state, null, 2), { mode: 0o600 });
}

/** The htb class of a device's egress to the coordinator. */
export const COORDINATOR_CLASS = "1:9";

/**
 * The `tc` command that adds or changes the egress class of device namespace `ns` towards device number `to`
 * (class `1:<10 + to>`) or towards the coordinator (`to` "coordinator": {@link COORDINATOR_CLASS}), shaped to
 * `bytesPerSecond` (at least 8 kbit/s, {@link htbBits}; burst {@link htbBurstBytes}).
 */
export function htbClassCommand(
  ns: string,
  verb: "add" | "change",
  to: number | "coordinator",
  bytesPerSecond: number,
): string[] {
  const bits = `${htbBits(bytesPerSecond)}bit`;
  const burst = String(htbBurstBytes(bytesPerSecond));
  const cls = htbClass(to);
  return ["tc", "-n", ns, "class", verb, "dev", "eth0", "parent", "1:", "classid", cls, "htb"].concat([
    "rate",
    bits,
    "ceil",
    bits,
    "burst",
    burst,
    "cburst",
    burst,
  ]);
}

/**
 * The bucket of an htb class shaped to `bytesPerSecond`: 1 ms of it, at least 4 KiB. What a link sends
 * after idling passes at once up to the bucket, so a larger one makes a lone request's transfers cheaper than
 * the link the planner prices (1/100 s at 1 Gbit/s let a 1.6 MB tensor through in 3.2 ms instead of 12.8).
 */
export function htbBurstBytes(bytesPerSecond: number): number {
  return Math.max(4096, Math.round(bytesPerSecond / 1000));
}

/**
 * The largest packet (GSO) a device's eth0 may hand its qdisc when its slowest class is shaped to
 * `bytesPerSecond`: no larger than that class's bucket, at most 64 KiB. htb lets a packet through whenever
 * the class has tokens left and charges it after, so a 64 KiB segment passed whole through a 16 KiB bucket:
 * a 61 KiB tensor crossed 20 Mbit/s in 0.3 ms instead of 25 ms.
 */
export function gsoMaxSize(bytesPerSecond: number): number {
  return Math.min(65536, htbBurstBytes(bytesPerSecond));
}

/**
 * Records device `i`'s eth0 GSO limit, `bytes`, in `state` and returns the `ip` command that sets it in the
 * device's namespace.
 */
export function gsoLimit(state: TestbedState, i: number, bytes: number): string[] {
  state.gsoMaxSize = state.gsoMaxSize ?? [];
  state.gsoMaxSize[i] = bytes;
  return ["ip", "-n", `${state.prefix}-${i}`, "link", "set", "dev", "eth0", "gso_max_size", String(bytes)];
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return `network namespaces need root (running as uid ${process.getuid?.()})`;
  if (!sh(["ip", "-V"], true).ok) return "the 'ip' command (iproute2) is missing";
  if (!sh(["tc", "-V"], true).ok) return "the 'tc' command (iproute2) is missing";
  return undefined;
}

/**
 * The cgroup v1 CPU period, us. A short period spreads a small share evenly over time, as a slower processor
 * runs: with 100 ms an eighth of a core ran a request sent alone at full speed for up to 12.5 ms before it was
 * stopped for 87.5 ms, so a stage of 4 ms of CPU finished in 4 ms, not in the ~30 ms a processor an eighth as
 * fast takes (camera-server: latency predicted 73% above the measurement; 24% with 10 ms). The kernel refuses
 * quotas under 1 ms, so small shares get a longer period.
 */
export function cpuQuotaPeriodUs(share: number): number {
  return Math.max(10000, Math.ceil(1000 / share));
}

/** Limits the cgroup `dir` to `share` cores (cgroup v1 CFS quota); undefined, 0 or Infinity removes the limit. */
export function writeCpuQuota(dir: string, share: number | undefined): void {
  const limited = share !== undefined && Number.isFinite(share) && share > 0;
  const period = limited ? cpuQuotaPeriodUs(share) : 100000;
  // Quota first lifted, so the new period is never shorter than a quota that would then be refused.
  writeFileSync(join(dir, "cpu.cfs_quota_us"), "-1");
  writeFileSync(join(dir, "cpu.cfs_period_us"), String(period));
  if (limited) writeFileSync(join(dir, "cpu.cfs_quota_us"), String(Math.round(share * period)));
}

/** Why cgroup v1 CPU quotas cannot be used here, or undefined when they can (mounts the controller if needed). */
function cgroupUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "cgroup CPU quotas need root";
  if (!existsSync(join(CGROUP_CPU, "cpu.cfs_quota_us"))) {
    mkdirSync(CGROUP_CPU, { recursive: true });
    if (!sh(["mount", "-t", "cgroup", "-o", "cpu", "cgroup", CGROUP_CPU], true).ok)
      return `no cgroup v1 cpu controller at ${CGROUP_CPU} and it cannot be mounted`;
  }
  return undefined;
}

function pairKey(a: string, b: string): string {
  return `${a}>${b}`;
}

/** The link joining two devices (the first that lists both), if any. */
function linkBetween(cluster: Cluster, a: string, b: string) {
  return cluster.links.find((l) => l.devices.includes(a) && l.devices.includes(b));
}

/** How deploy() names the coordinator in link delays. */
const COORDINATOR = "coordinator";

/**
 * The link device `d`'s path to the coordinator stands for: from `d` to the cluster's output device; none when
 * `d` is that device, none is declared, or no link joins them.
 */
function coordinatorLink(cluster: Cluster, d: string) {
  const end = cluster.outputDevice;
  return end === undefined || end === d ? undefined : linkBetween(cluster, end, d);
}

function cpusFor(d: Device, i: number, ncpu: number): number[] {
  if (d.cpus && d.cpus.length > 0) return d.cpus;
  const n = Math.max(1, Math.min(ncpu, Math.ceil(d.cpuShare ?? 1)));
  return Array.from({ length: n }, (_, k) => (i + k) % ncpu);
}

/**
 * Brings up one worker per cluster device (see {@link TestbedOptions}). On any failure it removes what it
 * made before rethrowing. The state file records everything, so {@link testbedDown} can clean up later.
 */
export async function testbedUp(cluster: Cluster, opts: TestbedOptions = {}): Promise<Testbed> {
  const file = opts.stateFile ?? defaultStateFile();
  const prefix = opts.prefix ?? defaultPrefix();
  if (!/^[a-z][a-z0-9]{0,5}$/.test(prefix))
    throw new RuntimeFault("RUNTIME", `testbed: prefix '${prefix}' must be 1-6 lowercase letters or digits`);
  if (existsSync(file))
    throw new RuntimeFault(
      "RUNTIME",
      `testbed: ${file} exists: a testbed is up (run cleave testbed down first)`,
    );
  const why = opts.loopback ? "loopback requested" : netnsUnavailable();
  const cgWhy = opts.loopback ? "loopback requested" : cgroupUnavailable();
  // Before the state file exists: a refused up must not run `down`, which would sweep the prefix's namespaces.
  const taken = why === undefined || cgWhy === undefined ? prefixInUse(prefix) : undefined;
  if (taken !== undefined)
    throw new RuntimeFault(
      "RUNTIME",
      `testbed: prefix '${prefix}' is in use (${taken}): another testbed is up with it, or one was stopped without 'down' (remove it with 'cleave testbed down --state FILE', or choose another prefix: --prefix or $CLEAVE_TESTBED_PREFIX)`,
    );
  const subnet = opts.subnet ?? 0;
  const ncpu = availableParallelism();
  const state: TestbedState = {
    version: 1,
    prefix,
    mode: "loopback",
    namespaces: [],
    cgroups: [],
    pids: [],
    workers: [],
    token: opts.token ?? randomBytes(16).toString("hex"),
    linkDelayMs: {},
    notes: [],
    detached: opts.detached === true,
  };
  for (const a of cluster.devices)
    for (const b of cluster.devices) {
      const l = a !== b ? linkBetween(cluster, a.name, b.name) : undefined;
      if (l && l.latency > 0) state.linkDelayMs[pairKey(a.name, b.name)] = l.latency * 1000;
    }
  // The coordinator takes the outputs as the output device would: each device's path to it gets the delay
  // (and, in namespaces, the bandwidth) of its link to the output device. Its own path to the devices stays
  // as it is: stage files travel on it, and a bench that must pay the input device's link relays the inputs
  // through that device's worker (`relayInputs`).
  if (cluster.outputDevice !== undefined) state.outputDevice = cluster.outputDevice;
  for (const d of cluster.devices) {
    const lout = coordinatorLink(cluster, d.name);
    if (lout && lout.latency > 0) state.linkDelayMs[pairKey(d.name, COORDINATOR)] = lout.latency * 1000;
  }
  save(file, state);
  try {
    if (why === undefined) {
      state.mode = "netns";
      buildNetwork(cluster, state, file, subnet);
    } else state.notes.push(`no namespaces: ${why}; workers run on plain loopback without bandwidth shaping`);
    if (cgWhy !== undefined) state.notes.push(`no CPU quotas: ${cgWhy}; only taskset pinning`);
    if (!hasTaskset()) state.notes.push("no taskset: workers are not pinned");
    const devices: LocalDevice[] = cluster.devices.map((d, i) => {
      const cpus = cpusFor(d, i, ncpu);
      const share = d.cpuShare ?? cpus.length;
      return {
        name: d.name,
        cpus,
        threads: d.threads ?? Math.max(1, Math.min(cpus.length, Math.ceil(share))),
        host: state.mode === "netns" ? `10.77.${subnet}.${10 + i}` : "127.0.0.1",
      };
    });
    const cgroupOf = new Map<string, string>();
    if (cgWhy === undefined) {
      cluster.devices.forEach((d, i) => {
        const dir = join(CGROUP_CPU, `${prefix}-${i}`);
        mkdirSync(dir, { recursive: true });
        state.cgroups.push(dir);
        save(file, state);
        // A share as large as the pinned CPUs needs no quota (taskset already bounds it), and a quota there
        // still throttles: a one-core quota on a one-CPU worker was throttled for 1.6 s of a 60 s benchmark.
        const pinned = devices[i].cpus?.length ?? Number.POSITIVE_INFINITY;
        const share = d.cpuShare !== undefined && d.cpuShare < pinned ? d.cpuShare : undefined;
        writeCpuQuota(dir, share);
        cgroupOf.set(d.name, dir);
        state.notes.push(
          `${d.name}: cpus ${devices[i].cpus?.join(",")}, ${share !== undefined ? `quota ${share} core` : "no quota"}, ${devices[i].threads} thread(s)`,
        );
      });
    }
    const nsOf = new Map(cluster.devices.map((d, i) => [d.name, `${prefix}-${i}`]));
    const local = await startLocalWorkers(devices, {
      token: state.token,
      transport: opts.transport,
      detached: opts.detached,
      runs: opts.runs,
      logFile: (d) => join(dirname(file), `${d.name}.log`),
      wrap: (d, cmd) => {
        let c = cmd;
        if (state.mode === "netns") c = ["ip", "netns", "exec", nsOf.get(d.name)!, ...c];
        const cg = cgroupOf.get(d.name);
        // Join the cgroup before exec, so the worker and every onnxruntime thread it starts are inside it.
        if (cg) c = ["sh", "-c", `echo $$ > ${join(cg, "cgroup.procs")} && exec "$@"`, "sh", ...c];
        return c;
      },
    });
    state.pids = local.pids;
    state.processes = local.pids.flatMap((pid) => processIdentity(pid) ?? []);
    state.workers = local.workers;
    save(file, state);
    return handle(state, file, local.stop);
  } catch (err) {
    await testbedDown(file).catch(() => {});
    throw err instanceof RuntimeFault ? err : new RuntimeFault("RUNTIME", `testbed: ${errorMessage(err)}`);
  }
}

function buildNetwork(cluster: Cluster, state: TestbedState, file: string, subnet: number): void {
  const p = state.prefix;
  const coord = `${p}-coord`;
  const addNs = (ns: string) => {
    sh(["ip", "netns", "add", ns]);
    state.namespaces.push(ns);
    save(file, state);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  };
  addNs(coord);
  state.coordinatorNamespace = coord;
  sh(["ip", "-n", coord, "link", "add", "br0", "type", "bridge"]);
  sh(["ip", "-n", coord, "addr", "add", `10.77.${subnet}.1/24`, "dev", "br0"]);
  sh(["ip", "-n", coord, "link", "set", "br0", "up"]);
  const addr = (i: number) => `10.77.${subnet}.${10 + i}`;
  cluster.devices.forEach((d, i) => {
    const ns = `${p}-${i}`;
    addNs(ns);
    // Both ends are created inside the namespaces, so the host's namespace never holds them.
    sh(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", `v${i}`, "netns", coord]);
    sh(["ip", "-n", coord, "link", "set", `v${i}`, "master", "br0", "up"]);
    sh(["ip", "-n", ns, "addr", "add", `${addr(i)}/24`, "dev", "eth0"]);
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    // Egress shaping of this device: one htb class per destination device, at the link's bandwidth.
    sh(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1"]);
    sh([
      "tc",
      "-n",
      ns,
      "class",
      "add",
      "dev",
      "eth0",
      "parent",
      "1:",
      "classid",
      "1:1",
      "htb",
      "rate",
      "10gbit",
    ]);
    let slowest = Number.POSITIVE_INFINITY;
    cluster.devices.forEach((e, j) => {
      if (j === i) return;
      const l = linkBetween(cluster, d.name, e.name);
      if (!l) return;
      slowest = Math.min(slowest, l.bandwidth);
      sh(htbClassCommand(ns, "add", j, l.bandwidth));
      sh(u32Filter(ns, `${addr(j)}/32`, htbClass(j)));
      state.notes.push(`${d.name} -> ${e.name}: ${mbit(l.bandwidth)} Mbit/s (htb)`);
    });
    // The outputs leave for the coordinator over what the device's link to the output device allows.
    const out = coordinatorLink(cluster, d.name);
    if (out) {
      sh(htbClassCommand(ns, "add", "coordinator", out.bandwidth));
      sh(u32Filter(ns, `10.77.${subnet}.1/32`, htbClass("coordinator")));
      state.notes.push(
        `${d.name} -> coordinator: as ${d.name} -> ${cluster.outputDevice} (the output device), ${mbit(out.bandwidth)} Mbit/s (htb)`,
      );
      slowest = Math.min(slowest, out.bandwidth);
    }
    // Packets no larger than the slowest class's bucket, so htb shapes a lone tensor as the link would.
    if (Number.isFinite(slowest)) sh(gsoLimit(state, i, gsoMaxSize(slowest)));
  });
  save(file, state);
}

/** The htb class of a device's egress towards device number `to`, or towards the coordinator. */
function htbClass(to: number | "coordinator"): string {
  return to === "coordinator" ? COORDINATOR_CLASS : `1:${10 + to}`;
}

/** The rate an htb class gets for `bytesPerSecond`, bit/s (htb takes no less than 8 kbit/s). */
function htbBits(bytesPerSecond: number): number {
  return Math.max(8000, Math.round(bytesPerSecond * 8));
}

function mbit(bytesPerSecond: number): string {
  return (htbBits(bytesPerSecond) / 1e6).toFixed(1);
}

/** The filter that sends the IP packets `ns` sends to `addr` (on eth0) through htb class `cls`. */
function u32Filter(ns: string, addr: string, cls: string): string[] {
  return [
    "tc",
    "-n",
    ns,
    "filter",
    "add",
    "dev",
    "eth0",
    "parent",
    "1:",
    "protocol",
    "ip",
    "prio",
    "1",
  ].concat(["u32", "match", "ip", "dst", addr, "flowid", cls]);
}

function handle(state: TestbedState, file: string, stop: () => Promise<void>): Testbed {
  return {
    state,
    workers: state.workers,
    token: state.token,
    linkDelayMs: (from, to) => state.linkDelayMs[pairKey(from, to)] ?? 0,
    coordinatorExec: state.coordinatorNamespace ? ["ip", "netns", "exec", state.coordinatorNamespace] : [],
    down: async () => {
      // Our own children: stop them gracefully (and reap them) before removing their namespaces.
      if (!state.detached) await stop();
      return testbedDown(file);
    },
  };
}

/** Reads a testbed's state file (undefined when none is up). */
export function readTestbedState(stateFile = defaultStateFile()): TestbedState | undefined {
  if (!existsSync(stateFile)) return undefined;
  const corrupt = (why: string) =>
    new ArgumentError(
      `${stateFile}: not a cleave testbed state file (${why}); if no testbed is up, delete it`,
      { file: stateFile },
      "BAD_CONFIG",
    );
  const st = lstatSync(stateFile);
  if (st.isSymbolicLink() || !st.isFile())
    throw corrupt("it is a symbolic link or not a file, and is not followed");
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw corrupt(`it belongs to uid ${st.uid}, not to this user`);
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(stateFile, "utf8"));
  } catch (err) {
    throw corrupt(errorMessage(err).split("\n")[0]);
  }
  const r = STATE.safeParse(obj);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw corrupt(`${issue.path.join(".") || "top level"}: ${issue.message}`);
  }
  return r.data as TestbedState;
}

/** Shape of a state file, checked on reading (it may be left over from another version or truncated). */
const STATE = z.object({
  version: z.literal(1),
  prefix: z.string(),
  mode: z.enum(["netns", "loopback"]),
  coordinatorNamespace: z.string().optional(),
  namespaces: z.array(z.string()),
  cgroups: z.array(z.string()),
  pids: z.array(z.int()),
  processes: z.array(z.object({ pid: z.int(), start: z.string(), cmd: z.string() })).optional(),
  workers: z.array(z.object({ name: z.string(), endpoint: z.string() })),
  token: z.string(),
  linkDelayMs: z.record(z.string(), z.number()),
  outputDevice: z.string().optional(),
  notes: z.array(z.string()),
  detached: z.boolean(),
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops the workers and removes every namespace (with its interfaces and shaping) and cgroup the state
 * file lists, plus any leftover namespace with the same prefix. Safe to run twice. Returns what it removed.
 */
export async function testbedDown(stateFile = defaultStateFile()): Promise<string[]> {
  const state = readTestbedState(stateFile);
  const done: string[] = [];
  if (!state) return done;
  // Only processes whose start time and command line are still those recorded: an id the kernel gave to
  // another process since is left alone.
  const ours = (pid: number) => {
    const was = state.processes?.find((p) => p.pid === pid);
    const now = processIdentity(pid);
    return was !== undefined && now !== undefined && now.start === was.start && now.cmd === was.cmd;
  };
  const pids = state.pids.filter((pid) => pid > 0 && alive(pid));
  const mine = pids.filter(ours);
  for (const pid of pids)
    if (!mine.includes(pid)) done.push(`left process ${pid} alone (not the worker the testbed started)`);
  for (const pid of mine) process.kill(pid, "SIGTERM");
  for (let i = 0; i < 60 && mine.some(ours); i++) await new Promise((r) => setTimeout(r, 50));
  for (const pid of mine)
    if (ours(pid)) {
      process.kill(pid, "SIGKILL");
      done.push(`killed worker ${pid}`);
    } else done.push(`stopped worker ${pid}`);
  for (let i = 0; i < 40 && mine.some(ours); i++) await new Promise((r) => setTimeout(r, 50));
  const listed = namespaceNames();
  const leftovers = listed.filter((n) => n.startsWith(`${state.prefix}-`));
  for (const ns of new Set([...state.namespaces, ...leftovers]))
    if (listed.includes(ns)) {
      sh(["ip", "netns", "del", ns], true);
      done.push(`namespace ${ns}`);
    }
  for (const cg of state.cgroups) {
    for (let i = 0; i < 40 && existsSync(cg); i++) {
      try {
        rmdirSync(cg);
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    done.push(existsSync(cg) ? `cgroup ${cg} (still busy)` : `cgroup ${cg}`);
  }
  rmSync(stateFile, { force: true });
  return done;
}
