import { spawn, spawnSync } from "node:child_process";
import { constants } from "node:os";
import type { Cluster } from "../cluster/types.js";
import { ArgumentError } from "../errors.js";
import { cliCommand } from "../runtime/coordinator/local-cluster.js";
import type { WorkerAddress } from "../runtime/coordinator/pipeline.js";
import { defaultStateFile, readTestbedState, type TestbedState } from "../harness/testbed.js";
import { type CliIO, list, type ParsedFlags, processIO } from "./command.js";
import { givenToken } from "./worker-config.js";
import type { TlsConfig } from "../runtime/transport/transport.js";
import { tlsFlags } from "./tls-flags.js";

/** Environment variable set on a command re-run inside a testbed's coordinator namespace (value: the namespace). */
export const TESTBED_NS_ENV = "CLEAVE_TESTBED_NS";

/** Usage lines of the flags this module reads (for `run` and `bench`). */
/** The flags that name running workers and how to reach them (parsed by {@link remoteWorkers}). */
export const WORKER_FLAGS = {
  workers: { type: "string", multiple: true },
  tls: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
} as const;

export const WORKER_FLAGS_USAGE = `  --workers    running workers by device name (name=host:port,...), e.g. started with 'cleave worker'
  --token-file file whose first line is the token the given workers were started with
  --token      the token itself (default: $CLEAVE_TOKEN)
  --tls psk, --tls-cert/--tls-key[/--tls-ca]  TLS to the given workers, as they were started with it
               Devices with neither cpus: nor a --workers entry use the worker at their endpoint:
  --testbed    use the workers, token and link delays of 'cleave testbed up' (state file: --testbed FILE or
               --testbed=FILE, default ${defaultStateFile()}); when its workers are in
               namespaces, the command re-runs itself (as root) in the testbed's coordinator namespace`;

/** Running workers to use instead of local ones, and how to reach them. */
export interface RemoteWorkers {
  workers?: WorkerAddress[];
  token?: string;
  /** User-space one-way delay per link, ms, by sender and receiver name (for deploy()). */
  linkDelayMs?: (from: string, to: string) => number;
  /** The testbed they come from, when --testbed was given. */
  testbed?: { stateFile: string; state: TestbedState };
  /** TLS to them (`--tls psk` or certificates), as they were started with it. */
  tls?: TlsConfig;
}

/** Parses `--workers a=host:port,b=host:port`. */
export function parseWorkers(values: string[] | undefined): WorkerAddress[] | undefined {
  if (!values) return undefined;
  return values
    .flatMap((v) => v.split(","))
    .map((item) => {
      const m = /^([^=]+)=([^:]+:\d+)$/.exec(item.trim());
      if (!m)
        throw new ArgumentError(`--workers: expected name=host:port, got '${item}'`, { field: "workers" });
      return { name: m[1], endpoint: m[2] };
    });
}

/**
 * Checks that `--workers` names exactly the devices a command will run on (`of` says whose devices they are,
 * e.g. "plan.json"): a worker named after no such device, or a device left without a worker, is an
 * ArgumentError naming them, so a mistyped name never falls back to local workers measured in their place.
 */
export function checkWorkerNames(
  workers: readonly WorkerAddress[] | undefined,
  devices: readonly string[],
  of: string,
  /** Devices whose worker the cluster file's `endpoint:` gives: valid names that need no `--workers` entry. */
  fromCluster: ReadonlySet<string> = new Set(),
): void {
  if (workers === undefined) return;
  const wanted = new Set(devices);
  const given = new Set(workers.map((w) => w.name));
  const unknown = [...given].filter((n) => !wanted.has(n));
  const quote = (names: readonly string[]) => names.map((n) => `'${n}'`).join(", ");
  if (unknown.length > 0)
    throw new ArgumentError(
      `--workers: ${quote(unknown)} ${unknown.length > 1 ? "are not devices" : "is not a device"} of ${of} (its devices: ${[...wanted].join(", ")}); name each worker after the device it runs`,
      { field: "workers", device: unknown[0] },
    );
  const missing = [...wanted].filter((n) => !given.has(n) && !fromCluster.has(n));
  if (missing.length > 0)
    throw new ArgumentError(
      `--workers: no worker for device${missing.length > 1 ? "s" : ""} ${quote(missing)} of ${of} (give ${missing.map((n) => `${n}=host:port`).join(",")})`,
      { field: "workers", device: missing[0] },
    );
}

/**
 * Takes `--testbed [STATE]` out of argv, since node's parseArgs has no flags with an optional value. The next
 * argument is the state file unless it starts with "-" or names a model (`zoo:NAME`, `*.onnx`);
 * `--testbed=FILE` is never ambiguous. `stateFile` is undefined when the flag is absent.
 */
export function takeTestbedFlag(argv: readonly string[]): { argv: string[]; stateFile?: string } {
  const rest: string[] = [];
  let stateFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a.startsWith("--testbed=")) {
      stateFile = a.slice("--testbed=".length) || defaultStateFile();
    } else if (a === "--testbed") {
      const next = argv[i + 1];
      const isFile =
        next !== undefined && !next.startsWith("-") && !next.startsWith("zoo:") && !next.endsWith(".onnx");
      stateFile = isFile ? next : defaultStateFile();
      if (isFile) i++;
    } else rest.push(a);
  }
  return stateFile === undefined ? { argv: rest } : { argv: rest, stateFile };
}

/**
 * The workers a command runs on: from `--testbed` (workers, token and link delays of a testbed's state file,
 * whose workers must be exactly the cluster's devices) or from `--workers`/`--token`. One-line
 * ArgumentErrors name the state file or the device.
 */
export function remoteWorkers(
  values: ParsedFlags["values"],
  stateFile: string | undefined,
  cluster: Cluster,
): RemoteWorkers {
  const workers = parseWorkers(list(values, "workers"));
  const token = givenToken(values) ?? (stateFile === undefined ? process.env.CLEAVE_TOKEN : undefined);
  const tls = tlsFlags(values, token);
  if (stateFile === undefined) return { workers, token, ...(tls ? { tls } : {}) };
  if (workers !== undefined || token !== undefined)
    throw new ArgumentError(
      `--testbed takes the workers and token from ${stateFile}: drop --workers and --token`,
      { field: "testbed" },
    );
  const state = readTestbedState(stateFile);
  if (!state)
    throw new ArgumentError(
      `--testbed: no testbed is up (no state file ${stateFile}; start one with cleave testbed up CLUSTER.yaml)`,
      { file: stateFile, field: "testbed" },
    );
  const names = new Set(state.workers.map((w) => w.name));
  for (const d of cluster.devices)
    if (!names.has(d.name))
      throw new ArgumentError(
        `--testbed: device '${d.name}' of cluster ${cluster.name} has no worker in the testbed of ${stateFile} (its workers: ${[...names].join(", ")}); bring it up with the same cluster file`,
        { device: d.name, file: stateFile },
      );
  for (const w of state.workers)
    if (!cluster.devices.some((d) => d.name === w.name))
      throw new ArgumentError(
        `--testbed: the testbed of ${stateFile} has device '${w.name}', which is not in cluster ${cluster.name}; bring it up with the same cluster file`,
        { device: w.name, file: stateFile },
      );
  return {
    workers: state.workers,
    token: state.token,
    linkDelayMs: (from, to) => state.linkDelayMs[`${from}>${to}`] ?? 0,
    testbed: { stateFile, state },
  };
}

/**
 * When `remote` are a namespaced testbed's workers and this process is not in its coordinator namespace,
 * re-runs `cleave <command> <argv>` there ({@link runInNamespace}) and resolves to its exit code; undefined
 * when the command can run here.
 */
export function rerunInTestbed(
  command: string,
  argv: readonly string[],
  remote: RemoteWorkers,
  io: CliIO,
): Promise<number> | undefined {
  const ns = remote.testbed && namespaceToEnter(remote.testbed.state);
  return ns ? runInNamespace(ns, [command, ...argv], io) : undefined;
}

/** The namespace this process must re-run in to reach the testbed's workers, or undefined when it is there already (or the testbed is on loopback). */
function namespaceToEnter(state: TestbedState): string | undefined {
  const ns = state.coordinatorNamespace;
  if (ns === undefined || process.env[TESTBED_NS_ENV] === ns) return undefined;
  // Started by hand with `ip netns exec NS cleave ...`: already there.
  const here = spawnSync("ip", ["netns", "identify", String(process.pid)], { encoding: "utf8" });
  if (here.status === 0 && here.stdout.trim() === ns) return undefined;
  return ns;
}

/**
 * Re-runs `cleave <args>` inside network namespace `ns` (`ip netns exec`), with this process's environment
 * plus {@link TESTBED_NS_ENV}, and resolves to its exit code. With the process streams the child inherits
 * them (progress bars and colour stay); with other `io` its output is passed on line by line when it ends.
 * SIGINT, SIGTERM and SIGHUP received meanwhile are passed on to the child.
 */
async function runInNamespace(ns: string, args: readonly string[], io: CliIO): Promise<number> {
  if (process.getuid?.() !== 0)
    throw new ArgumentError(
      `--testbed: its workers are in network namespace ${ns}, which only root can enter (run as root)`,
      { field: "testbed" },
    );
  const inherit = io === processIO;
  const child = spawn("ip", ["netns", "exec", ns, ...cliCommand(), ...args], {
    stdio: inherit ? "inherit" : ["ignore", "pipe", "pipe"],
    env: { ...process.env, [TESTBED_NS_ENV]: ns },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (b: Buffer) => out.push(b));
  child.stderr?.on("data", (b: Buffer) => err.push(b));
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  for (const s of signals) process.on(s, forward);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code, signal) => resolve({ code, signal }));
      },
    );
    const lines = (bufs: Buffer[]) => {
      const text = Buffer.concat(bufs).toString("utf8").replace(/\n$/, "");
      return text === "" ? [] : text.split("\n");
    };
    for (const l of lines(out)) io.out(l);
    for (const l of lines(err)) io.err(l);
    return code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}

/**
 * The workers of `devices`: those given (`--workers`, a testbed), plus, for each device with neither a given
 * worker nor `cpus:` (emulated here), the running worker at its cluster file's `endpoint:`. `fromCluster`
 * names the devices whose worker came from the cluster file.
 */
export function clusterEndpointWorkers(
  cluster: Cluster,
  devices: readonly string[],
  given: readonly WorkerAddress[] | undefined,
): { workers: WorkerAddress[] | undefined; fromCluster: Set<string> } {
  const have = new Set((given ?? []).map((w) => w.name));
  const fromCluster = new Set<string>();
  const extra: WorkerAddress[] = [];
  for (const name of new Set(devices)) {
    const d = cluster.devices.find((x) => x.name === name);
    if (d === undefined || have.has(name) || d.cpus !== undefined || d.endpoint === undefined) continue;
    fromCluster.add(name);
    extra.push({ name, endpoint: d.endpoint });
  }
  if (given === undefined && extra.length === 0) return { workers: undefined, fromCluster };
  return { workers: [...(given ?? []), ...extra], fromCluster };
}
