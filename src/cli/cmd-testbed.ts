import { loadClusterSpec } from "./cluster-flag.js";
import { ArgumentError } from "../errors.js";
import {
  defaultPrefix,
  defaultStateFile,
  readTestbedState,
  testbedDown,
  testbedUp,
} from "../harness/testbed.js";
import { bool, type Command, parseFlags, str } from "./command.js";

const USAGE = `usage: cleave testbed up CLUSTER.yaml [--state FILE] [--prefix NAME] [--json] [--loopback] [--runs MODE]
       cleave testbed down [--state FILE]
       cleave testbed status [--state FILE]

Emulates a cluster on this machine: one worker per device, each in its own network namespace joined
by veth pairs to a bridge in a coordinator namespace, egress shaped with tc htb to the cluster's link
bandwidths, CPU limited with cgroup v1 cpu.cfs_quota_us (cpuShare) and taskset. Link latency is not
emulated by the kernel (no netem): 'cleave bench/run --testbed' add it in user space. Needs root; without it,
workers run on plain loopback. 'down' stops the workers and removes every namespace and cgroup made.
  --state     state file (default: $CLEAVE_TESTBED_STATE or ${defaultStateFile()})
  --prefix    names of its namespaces and cgroups, NAME-coord, NAME-0, ... (1-6 lowercase letters or digits;
              default: $CLEAVE_TESTBED_PREFIX or ${defaultPrefix()}); two testbeds up at once need two prefixes
  --loopback  skip namespaces and quotas even as root
  --runs      where the workers run their stages: auto (default), thread or inline (see cleave worker --runs)`;

/** `cleave testbed`. */
export const testbedCommand: Command = {
  name: "testbed",
  summary: "bring an emulated edge cluster up or down (namespaces, tc shaping, CPU quotas)",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("testbed", argv, {
      state: { type: "string" },
      json: { type: "boolean" },
      prefix: { type: "string" },
      loopback: { type: "boolean" },
      runs: { type: "string" },
    });
    const [action, file, extra] = positionals;
    const stateFile = str(values, "state") ?? defaultStateFile();
    if (extra !== undefined) throw new ArgumentError(`cleave testbed: unexpected argument '${extra}'`);
    if (action === "up") {
      if (file === undefined) throw new ArgumentError("cleave testbed up: missing the cluster file");
      const runs = str(values, "runs") ?? "auto";
      if (runs !== "auto" && runs !== "thread" && runs !== "inline")
        throw new ArgumentError(`--runs: expected auto, thread or inline, got '${runs}'`, { field: "runs" });
      const tb = await testbedUp(loadClusterSpec(file), {
        stateFile,
        detached: true,
        prefix: str(values, "prefix"),
        loopback: bool(values, "loopback"),
        runs,
      });
      const s = tb.state;
      if (bool(values, "json")) {
        io.out(JSON.stringify(s));
        return 0;
      }
      for (const n of s.notes.filter((n) => n.startsWith("no "))) io.err(`testbed: ${n}`);
      io.out(`testbed up (${s.mode}), state in ${stateFile}`);
      for (const n of s.notes.filter((n) => !n.startsWith("no "))) io.out(`  ${n}`);
      io.out(`  workers: ${s.workers.map((w) => `${w.name}=${w.endpoint}`).join(",")}`);
      io.out(`  token:   in ${stateFile} (readable by this user only; --testbed reads it)`);
      const delays = Object.entries(s.linkDelayMs);
      if (delays.length > 0)
        io.out(`  link delays (user space): ${delays.map(([k, v]) => `${k} ${v} ms`).join(", ")}`);
      if (tb.coordinatorExec.length > 0)
        io.out(
          `  benchmark on it: cleave bench MODEL --cluster ${file} --testbed${stateFile === defaultStateFile() ? "" : ` ${stateFile}`} (runs in ${tb.state.coordinatorNamespace})`,
        );
      return 0;
    }
    if (action === "down") {
      if (file !== undefined) throw new ArgumentError(`cleave testbed down: unexpected argument '${file}'`);
      if (!readTestbedState(stateFile)) {
        io.out(`no testbed is up (no ${stateFile})`);
        return 0;
      }
      const removed = await testbedDown(stateFile);
      io.out(`testbed down: ${removed.length > 0 ? removed.join(", ") : "nothing to remove"}`);
      return 0;
    }
    if (action === "status") {
      const s = readTestbedState(stateFile);
      if (bool(values, "json")) io.out(JSON.stringify(s ?? null));
      else if (!s) io.out(`no testbed is up (no ${stateFile})`);
      else io.out(`testbed up (${s.mode}): ${s.workers.map((w) => `${w.name}=${w.endpoint}`).join(",")}`);
      return 0;
    }
    throw new ArgumentError(`cleave testbed: expected 'up', 'down' or 'status', got '${action ?? ""}'`);
  },
};
