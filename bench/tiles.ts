/**
 * Single-request latency with spatial tiles: for each model, the best single device running the whole model
 * beside the latency plan with tiles (the planner's own choice, and 2 tiles forced when it chose none), on the
 * local cluster's two pinned one-core devices, requests sent one at a time, rounds alternating so a drift of
 * the host hits all alike. Planned as `cleave bench` plans (profiles calibrated to the devices' speed now, the
 * co-run slowdown of the two measured). Prints JSON: p50/p95 per configuration, the ratio to the best single
 * device, the plan's predicted latency and its error, the halo's extra MACs, and the co-run factors; and the
 * planned tiles rebuilt with Slices for the crops inside a tile (`sliceCrops`; same stages, priced as planned)
 * beside the default one-hot depthwise Conv crops, and the planned stages with every worker running each on a
 * thread of its own (`--runs thread`) beside the default (auto: chained stages inline at one request in flight). Then, priced only (no run), whether the
 * planner tiles on the equal pair (`examples/clusters/equal-pair.yaml`) at 1 Gbit/s and at 100 Mbit/s.
 *
 * Usage: node dist/bench/tiles.js [--models resnet50,efficientnet_b0,unet] [--requests N] [--rounds R]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { localClusterPath } from "../src/cli/load.js";
import { localProfileLine } from "../src/cli/local-profiles.js";
import { loadCluster } from "../src/cluster/load.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { tileModel } from "../src/ir/tile.js";
import type { StageAssignment } from "../src/partition/assign.js";
import { parallelPlanFor } from "../src/partition/plan-parallel.js";
import { makePlan } from "../src/partition/planner.js";
import { summarizeLatencies } from "../src/runtime/latency.js";
import { type DeployedSplit, deploySplit, wholeModel } from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";
import { emulatedCosts } from "../src/harness/emulated-profiles.js";
import type { RunMode } from "../src/runtime/worker/stage-runner.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: "resnet50,efficientnet_b0,unet" },
    requests: { type: "string", default: "15" },
    rounds: { type: "string", default: "3" },
  },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * The latency plan (and the tiled one) for `cluster`. With `coRun`, as `cleave bench` plans: the devices'
 * profiles calibrated to their speed now and the slowdown of two of them computing at once measured
 * (emulated devices of this machine), so the prediction prices what the run will see.
 */
async function planned(model: AnalyzedModel, declared: Cluster, tiles?: number, coRun = false) {
  const measured = await emulatedCosts(
    model,
    declared,
    {},
    { coRun, onProfile: (n) => process.stderr.write(`${localProfileLine(n)}\n`) },
  );
  const { cluster, profiles } = measured;
  const cost = costModelFor(model, cluster, { profiles });
  const out = makePlan({ model, modelPath: model.graph.source, cluster, cost, objective: "latency" });
  const par = await parallelPlanFor(
    out.plan,
    model,
    out.order,
    out.problem,
    cluster,
    cost,
    tiles ? { tiles } : {},
  );
  return { out, par, coRun: measured.coRun };
}

/** A configuration run side by side: its model and stages, what was predicted, where workers run stages. */
interface TileConfig {
  name: string;
  model: AnalyzedModel;
  assignment: StageAssignment;
  devices: string[];
  predicted: number;
  halo: number;
  stacks: number;
  runs?: RunMode;
}

const local = loadCluster(localClusterPath());
const results = [];
for (const name of values.models.split(",")) {
  const model = await analyzeModel(buildZooModel(name), { source: `zoo:${name}` });
  const { out, par: auto, coRun } = await planned(model, local, undefined, true);
  const forced = auto ? undefined : (await planned(model, local, 2, true)).par;
  const single = out.plan.baselines.find((b) => b.name === "single")!;
  const configs: TileConfig[] = [
    {
      name: `single ${single.singleDevice}`,
      model,
      assignment: wholeModel(model),
      devices: [single.singleDevice!],
      predicted: single.totals.latency!,
      halo: 0,
      stacks: 0,
    },
    ...[
      ["planned", auto],
      ["2 tiles forced", forced],
    ].flatMap(([label, p]) =>
      p && typeof p !== "string"
        ? [
            {
              name: label as string,
              model: p.parallel.model,
              assignment: p.parallel.assignment,
              devices: p.plan.stages.map((s) => s.device),
              predicted: p.plan.totals.latency,
              halo: p.plan.tiles!.haloMacs,
              stacks: p.plan.tiles!.stacks.length,
            },
          ]
        : [],
    ),
  ];
  const plannedRow = configs.find((c) => c.name === "planned");
  if (auto && plannedRow) {
    // The same plan with its crops as Slices: same nodes in the same order, so the same stage assignment.
    const stacks = auto.plan.tiles!.stacks;
    const sliced = await analyzeModel(
      tileModel(model, stacks, { slicesFirst: true, sliceCrops: true }).model,
      {
        source: model.graph.source,
        noFold: true,
        inputShapes: Object.fromEntries(
          model.graph.inputs.map((v) => [v.name, model.types.get(v.name)!.shape]),
        ),
      },
    );
    if (sliced.graph.nodes.length !== plannedRow.model.graph.nodes.length)
      throw new Error("Slice-crop model has other nodes than the planned one");
    configs.push({ ...plannedRow, name: "planned, Slice crops", model: sliced });
  }
  // The planned stages again with each worker running every stage on a thread of its own (`--runs thread`):
  // with one request in flight auto runs a worker's chained stages inline, which this row checks.
  if (plannedRow) configs.push({ ...plannedRow, name: "planned, stage threads", runs: "thread" });
  const deployed: DeployedSplit[] = [];
  try {
    for (const c of configs)
      deployed.push(
        await deploySplit(c.model, c.assignment, c.devices, local, { inFlight: 1, runs: c.runs }),
      );
    const samples: number[][] = configs.map(() => []);
    for (let r = 0; r < rounds; r++)
      for (let i = 0; i < configs.length; i++) {
        const m = await deployed[i].measure(requests);
        samples[i].push(...(m.report.latencySamplesMs ?? []));
      }
    const rows = configs.map((c, i) => {
      const s = summarizeLatencies(samples[i]);
      return {
        config: c.name,
        stages: c.devices.length,
        tileStacks: c.stacks,
        p50Ms: r3(s.p50),
        p95Ms: r3(s.p95),
        predictedMs: r3(c.predicted * 1e3),
        predictionError: r3((c.predicted * 1e3 - s.p50) / s.p50),
        haloMacsM: r3(c.halo / 1e6),
        haloShareOfModel: r3(c.halo / model.totals.macs),
        maxRelativeDiff: deployed[i].maxRelativeDiff,
      };
    });
    results.push({
      model: name,
      macsM: r3(model.totals.macs / 1e6),
      coRunFactors: coRun?.devices.map((d) => ({ device: d.name, factor: r3(d.factor) })),
      rows,
      p50SpeedupOverSingle: rows
        .slice(1)
        .map((r) => ({ config: r.config, ratio: r3(rows[0].p50Ms / r.p50Ms) })),
    });
  } finally {
    for (const d of deployed) await d.close();
  }
}

// Priced only: the equal pair at 1 Gbit/s and 100 Mbit/s (two one-core devices; roofline-priced, no profile).
const pair = loadCluster(join(import.meta.dirname, "..", "..", "examples", "clusters", "equal-pair.yaml"));
const priced = [];
for (const name of values.models.split(",")) {
  const model = await analyzeModel(buildZooModel(name), { source: `zoo:${name}` });
  for (const bw of [1e9 / 8, 1e8 / 8]) {
    const cluster: Cluster = {
      ...pair,
      devices: pair.devices.map((d) => ({ ...d, cpus: undefined, cpuShare: undefined })),
      links: pair.links.map((l) => ({ ...l, bandwidth: bw })),
    };
    const { out, par } = await planned(model, cluster);
    const single = out.plan.baselines.find((b) => b.name === "single")!;
    priced.push({
      model: name,
      link: `${(bw * 8) / 1e6} Mbit/s`,
      tiles: par ? par.plan.tiles!.stacks.map((s) => `${s.from} -> ${s.to} x${s.tiles}`) : [],
      predictedMs: r3((par?.plan.totals.latency ?? out.plan.totals.latency) * 1e3),
      singleMs: r3(single.totals.latency! * 1e3),
    });
  }
}
console.log(
  JSON.stringify(
    {
      bench: "tiles",
      cluster: local.name,
      requestsPerRound: requests,
      rounds,
      results,
      equalPairPriced: priced,
    },
    null,
    2,
  ),
);
