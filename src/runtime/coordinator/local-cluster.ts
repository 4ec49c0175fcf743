import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { RuntimeFault } from "../../errors.js";
import { logger } from "../log.js";
import type { WorkerAddress } from "./pipeline.js";
import type { TransportName } from "../transport/transport.js";
import type { RunMode } from "../worker/stage-runner.js";

const log = logger("runtime:local-cluster");

/** One emulated device to start a local worker for. */
export interface LocalDevice {
  name: string;
  /** CPUs the worker is pinned to (`taskset -c`); absent: not pinned. */
  cpus?: number[];
  /** onnxruntime intra-op threads (default: the number of cpus, else 1). */
  threads?: number;
  /** Address this worker listens on (default: the cluster's host option). */
  host?: string;
  /** Port to listen on (default 0: a free one); a restarted worker keeps its endpoint with it. */
  port?: number;
}

/** Options of {@link startLocalWorkers}. */
export interface LocalClusterOptions {
  /** Token the workers require (default: a fresh random one, returned in the result). */
  token?: string;
  transport?: TransportName;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Time for each worker to print its listen line, ms (default 20000). */
  startTimeoutMs?: number;
  /**
   * How to run each worker: a command and arguments placed before `worker ...` (default: this cleave's
   * own CLI entry). The testbed uses it to wrap workers in `ip netns exec` and cgroups.
   */
  wrap?: (device: LocalDevice, command: string[]) => string[];
  /**
   * Start the workers as daemons that outlive this process (for `cleave testbed up`): they are not
   * killed when this process exits, and their stderr goes to `logFile(device)` when given.
   */
  detached?: boolean;
  logFile?: (device: LocalDevice) => string;
  /** Where the workers run their stages (`cleave worker --runs`; default auto). */
  runs?: RunMode;
}

/** Workers started on this machine. */
export interface LocalCluster {
  /** Name and endpoint of each worker, in the order given (what {@link deploy} takes). */
  workers: WorkerAddress[];
  /** The token the workers require. */
  token: string;
  /** Process ids of the workers (a restarted worker's entry is its new process). */
  pids: number[];
  /**
   * Kills worker `name` (SIGKILL, also when it is stopped or hung) and starts it again at the same endpoint with
   * the same token, CPUs and threads; resolves once it listens. Its `pids` entry changes.
   */
  restart(name: string): Promise<void>;
  /** True when the workers are pinned with taskset. */
  pinned: boolean;
  /** Stops every worker (SIGTERM, then SIGKILL after 2 s) and waits for them to exit. */
  stop(): Promise<void>;
}

/** True when `taskset` can be run. */
export function hasTaskset(): boolean {
  const r = spawnSync("taskset", ["--version"], { stdio: "ignore" });
  return r.status === 0;
}

/**
 * The command that runs cleave's CLI: `node dist/src/cli/main.js` when this module runs from dist, or
 * `node --import tsx src/cli/main.ts` when it runs from TypeScript source under tsx.
 */
export function cliCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) {
    const main = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
    return [process.execPath, "--import", "tsx", main];
  }
  const main = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
  if (!existsSync(main))
    throw new RuntimeFault("RUNTIME", `${main}: cleave's CLI entry is missing (run npm run build)`);
  return [process.execPath, main];
}

const live = new Set<ChildProcess>();
let hooksInstalled = false;

/** Kills every worker still running when the parent exits or is interrupted. */
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = () => {
    for (const c of live) c.kill("SIGKILL");
  };
  process.once("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      killAll();
      process.off(sig, handler);
      // Re-raise so the default behaviour (exit) still happens when nobody else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    c.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) {
    c.kill("SIGTERM");
    if (!(await waitExit(c, 2000))) {
      c.kill("SIGKILL");
      await waitExit(c, 2000);
    }
  }
  live.delete(c);
}

/**
 * Starts one real `cleave worker` process per device on 127.0.0.1 port 0, pinned to the device's CPUs
 * with `taskset -c` when cpus are given and taskset exists, with onnxruntime threads to match. Reads each
 * worker's listen line for its endpoint. The workers exit when `stop()` is called, when this process
 * exits or is interrupted, and when this process dies (their stdin closes).
 */
export async function startLocalWorkers(
  devices: readonly LocalDevice[],
  opts: LocalClusterOptions = {},
): Promise<LocalCluster> {
  if (!opts.detached) installExitHooks();
  const token = opts.token ?? randomBytes(16).toString("hex");
  const canPin = devices.some((d) => d.cpus && d.cpus.length > 0) && hasTaskset();
  const started: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map(stopChild));
  };
  const spawnOne = async (d: LocalDevice) => {
    const threads = d.threads ?? (d.cpus && d.cpus.length > 0 ? d.cpus.length : 1);
    let cmd = [
      ...cliCommand(),
      "worker",
      "--listen",
      `${d.host ?? opts.host ?? "127.0.0.1"}:${d.port ?? 0}`,
      "--name",
      d.name,
      "--threads",
      String(threads),
      "--transport",
      opts.transport ?? "tcp",
      ...(opts.runs !== undefined && opts.runs !== "auto" ? ["--runs", opts.runs] : []),
      ...(opts.detached ? [] : ["--exit-on-stdin-close"]),
    ];
    if (canPin && d.cpus && d.cpus.length > 0) cmd = ["taskset", "-c", d.cpus.join(","), ...cmd];
    if (opts.wrap) cmd = opts.wrap(d, cmd);
    log(`starting ${d.name}: ${cmd.join(" ")}`);
    const logFd = opts.detached && opts.logFile ? openSync(opts.logFile(d), "a") : undefined;
    const child = spawn(cmd[0], cmd.slice(1), {
      stdio: opts.detached ? ["ignore", "pipe", logFd ?? "ignore"] : ["pipe", "pipe", "pipe"],
      env: { ...process.env, CLEAVE_TOKEN: token },
      detached: opts.detached === true,
    });
    if (logFd !== undefined) closeSync(logFd);
    started.push(child);
    if (!opts.detached) {
      live.add(child);
      child.once("exit", () => live.delete(child));
    }
    const endpoint = await readListenLine(child, d.name, opts.startTimeoutMs ?? 20000);
    if (opts.detached) {
      child.stdout?.destroy();
      child.unref();
    }
    return { name: d.name, endpoint, child };
  };
  try {
    const up = await Promise.all(devices.map((d) => spawnOne(d)));
    const workers = up.map((u) => ({ name: u.name, endpoint: u.endpoint }));
    const children = up.map((u) => u.child);
    const pids = children.map((c) => c.pid ?? -1);
    const restart = async (name: string) => {
      const i = devices.findIndex((d) => d.name === name);
      if (i < 0) throw new RuntimeFault("WORKER", `no local worker is named '${name}'`, { device: name });
      const old = children[i];
      if (old.exitCode === null && old.signalCode === null) {
        old.kill("SIGKILL");
        await waitExit(old, 5000);
      }
      live.delete(old);
      const ep = workers[i].endpoint;
      const port = Number(ep.slice(ep.lastIndexOf(":") + 1));
      const again = await spawnOne({ ...devices[i], port });
      children[i] = again.child;
      pids[i] = again.child.pid ?? -1;
    };
    return { workers, token, pids, pinned: canPin, stop, restart };
  } catch (err) {
    await stop();
    throw err;
  }
}

function readListenLine(child: ChildProcess, name: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
    });
    const rl = createInterface({ input: child.stdout! });
    const fail = (why: string) => {
      clearTimeout(timer);
      rl.close();
      const detail = stderr
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.startsWith("npm warn"))
        .pop();
      reject(
        new RuntimeFault("WORKER", `worker ${name}: ${why}${detail ? ` (${detail.trim()})` : ""}`, {
          device: name,
        }),
      );
    };
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
    child.once("error", (err) => fail(`cannot start (${err.message})`));
    const onExit = (code: number | null, sig: string | null) =>
      fail(`exited before listening (${sig ?? `code ${code}`})`);
    child.once("exit", onExit);
    rl.once("line", (line) => {
      const m = / listening on (\S+)$/.exec(line);
      if (!m) return fail(`printed '${line}' instead of its listen line`);
      clearTimeout(timer);
      child.off("exit", onExit);
      rl.close();
      child.stdout?.resume();
      resolve(m[1]);
    });
  });
}
