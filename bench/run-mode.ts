/**
 * Stages on threads of their own against stages on the worker's I/O thread, and `auto` (threads only on a worker
 * running more than one stage), the three `cleave worker --runs` modes side by side on the emulated testbed (as root; run it inside the testbed lock):
 *   flock /tmp/cleave-testbed.lock node dist/bench/run-mode.js [--model efficientnet_b0] [--requests 60] [--rounds 2]
 *
 * The case: a camera of an eighth of a core holds the input, a server of one core, 1 Gbit/s between them;
 * the whole model is replicated on both (`[[camera, server]]`) and every input goes through the camera
 * (`relayInputs`), as it must when the camera holds the image. On the I/O thread the camera relays the
 * server's inputs only between its own runs (each 8x the server's), so the server waits; on threads it
 * relays while its replica runs. Also measured: requests sent alone (the relay hop's cost on an idle camera).
 * Each round brings a testbed up per mode, in reversed order every other round. Prints JSON.
 *
 * Without namespaces and cgroups (not root) both devices are pinned local workers without the quota: the
 * figures are then not the case above, and `testbed` in the output says "loopback".
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { parseCluster } from "../src/cluster/load.js";
import type { Cluster } from "../src/cluster/types.js";
import { testbedUp } from "../src/harness/testbed.js";
import { analyzeModel } from "../src/ir/analyze.js";
import type { WorkerAddress } from "../src/runtime/coordinator/pipeline.js";
import { deploySplit, wholeModel } from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";

const CLUSTER = `
name: camera-relay
inputDevice: camera
outputDevice: server
devices:
  - { name: camera, kind: cpu, throughput: 6.5 GMAC/s, memoryBandwidth: 2.5GB/s, memory: 1GiB, idlePower: 0.125W,
      activePower: 0.375W, cpus: [1], cpuShare: 0.125, threads: 1 }
  - { name: server, kind: cpu, throughput: 52 GMAC/s, memoryBandwidth: 20GB/s, memory: 4GiB, idlePower: 1W,
      activePower: 3W, cpus: [0], cpuShare: 1, threads: 1 }
links:
  - { devices: [camera, server], kind: ethernet, bandwidth: 1Gbit/s, latency: 0.1ms, energyPerBit: 5nJ/bit }
`;

interface ChildArgs {
  cluster: Cluster;
  workers: WorkerAddress[];
  token: string;
  model: string;
  requests: number;
}

interface ModeFigures {
  throughput: number;
  p50Ms: number;
  aloneP50Ms: number;
  /** Requests each device's replica ran. */
  runs: Record<string, number>;
  maxRelativeDiff: number;
}

async function child(args: ChildArgs): Promise<ModeFigures> {
  const model = await analyzeModel(buildZooModel(args.model), { source: `zoo:${args.model}` });
  const split = await deploySplit(model, wholeModel(model), [["camera", "server"]], args.cluster, {
    workers: args.workers,
    token: args.token,
    relayInputs: true,
    requests: args.requests,
    inFlight: 4,
    warmupMs: 1000,
    reference: model,
  });
  try {
    const loaded = await split.measure(args.requests, 4);
    const alone = await split.measure(12, 1);
    const runs: Record<string, number> = {};
    for (const r of loaded.replicas) runs[r.device] = r.completed;
    return {
      throughput: loaded.report.throughput,
      p50Ms: loaded.report.latencyMs.p50,
      aloneP50Ms: alone.report.latencyMs.p50,
      runs,
      maxRelativeDiff: split.maxRelativeDiff,
    };
  } finally {
    await split.close();
  }
}

if (process.argv[2] === "--child") {
  const r = await child(JSON.parse(process.argv[3]) as ChildArgs);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "efficientnet_b0" },
    requests: { type: "string", default: "60" },
    rounds: { type: "string", default: "2" },
    loopback: { type: "boolean" },
  },
});
const cluster = parseCluster(parseYaml(CLUSTER), "camera-relay");
const modes = ["inline", "auto", "thread"] as const;
const rounds = Number(values.rounds);
const figures: Record<string, ModeFigures[]> = { inline: [], auto: [], thread: [] };
let testbed = "none";
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
    const dir = mkdtempSync(join(tmpdir(), "cleave-run-mode-"));
    const tb = await testbedUp(cluster, {
      stateFile: join(dir, "state.json"),
      prefix: `rm${Math.random().toString(36).slice(2, 6)}`,
      subnet: 31,
      runs: mode,
      loopback: values.loopback === true,
    });
    testbed = tb.state.mode;
    try {
      const args: ChildArgs = {
        cluster,
        workers: tb.workers,
        token: tb.token,
        model: values.model,
        requests: Number(values.requests),
      };
      const exec = tb.coordinatorExec;
      const p = spawn(exec[0] ?? process.execPath, [
        ...(exec.length > 0 ? [...exec.slice(1), process.execPath] : []),
        ...process.execArgv,
        import.meta.filename,
        "--child",
        JSON.stringify(args),
      ]);
      let out = "";
      let err = "";
      p.stdout.on("data", (d) => {
        out += d;
      });
      p.stderr.on("data", (d) => {
        err += d;
      });
      const [code] = await once(p, "exit");
      if (code !== 0) throw new Error(`${mode}: measuring failed (${code}): ${err.slice(-800)}`);
      figures[mode].push(JSON.parse(out.trim().split("\n").at(-1)!) as ModeFigures);
    } finally {
      await tb.down();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r2 = (x: number) => Math.round(x * 100) / 100;
const summary = Object.fromEntries(
  modes.map((m) => [
    m,
    {
      throughput: r2(median(figures[m].map((f) => f.throughput))),
      p50Ms: r2(median(figures[m].map((f) => f.p50Ms))),
      aloneP50Ms: r2(median(figures[m].map((f) => f.aloneP50Ms))),
      rounds: figures[m],
    },
  ]),
);
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "run-mode",
      model: values.model,
      testbed,
      requests: Number(values.requests),
      rounds,
      ...summary,
      overInline: Object.fromEntries(
        (["auto", "thread"] as const).map((m) => [
          m,
          {
            throughput: r2(summary[m].throughput / summary.inline.throughput),
            loadedP50: r2(summary.inline.p50Ms / summary[m].p50Ms),
            aloneP50: r2(summary.inline.aloneP50Ms / summary[m].aloneP50Ms),
          },
        ]),
      ),
    },
    null,
    2,
  )}\n`,
);
