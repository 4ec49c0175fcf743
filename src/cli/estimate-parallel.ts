import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { TiledCostModel } from "../cost/cost-tiled.js";
import { ArgumentError } from "../errors.js";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { tileModel } from "../ir/tile.js";
import { type DagEvaluation, type DagStage, evaluateDag } from "../partition/evaluate-dag.js";
import type { PartitionOrder } from "../partition/order.js";
import { type Plan, planToAssignment } from "../partition/plan.js";
import { buildProblem } from "../partition/problem.js";
import { type CodecTimes, encodedProblem, formatBudget } from "../partition/encodings.js";
import { formatFidelity, measureCodecTimes } from "../partition/calibrate.js";
import type { PlanCutEncoding, PlanFidelity } from "../partition/plan-encodings.js";
import type { EncodingName } from "../onnx/encoding.js";
import { readPlan } from "../partition/plan.js";
import { costModelFor } from "../cost/cost-factory.js";
import { clusterForPlan } from "./cluster-flag.js";
import { bool, type CliIO, modelInputs, planInputs, str } from "./command.js";
import { fmtBytes, fmtTime, type Style, style, table } from "./format.js";
import { loadForCli } from "./load.js";
import { withLocalProfiles } from "./local-profiles.js";
import { progress } from "./progress.js";

/** A saved plan priced again, its stages as a graph for one request (tiles and branches side by side). */
export interface PlanFilePrice {
  /** Predicted latency of one request now, and what the plan file recorded, s. */
  latency: number;
  planLatency: number;
  energy: number;
  stages: Array<{
    index: number;
    device: string;
    nodes: number;
    start: number;
    finish: number;
    time: number;
  }>;
  transfers: Array<{
    fromStage: number;
    toStage: number;
    from: string;
    to: string;
    bytes: number;
    time: number;
  }>;
  tiles: number;
  branchRegions: number;
  /** The plan's encoded cut tensors as priced (bytes as float32 and as sent) and its recorded fidelity. */
  encodings?: {
    tensors: PlanCutEncoding[];
    budget: string;
    fidelity: { calibration: PlanFidelity; held: PlanFidelity };
    /** Where the encode/decode times came from: the plan file, or measured now on this machine. */
    codecTimes: "plan" | "measured";
  };
}

/**
 * Prices a plan file on `cluster` with `cost` (the original model's cost model): rebuilds the tiled model the
 * plan records (the model itself without tiles), assigns its nodes to the plan's stages, orders them stage by
 * stage and evaluates the stages as a graph (`evaluateDag`): what `cleave estimate --plan` shows.
 */
export async function pricePlanFile(
  model: AnalyzedModel,
  plan: Plan,
  cluster: Cluster,
  cost: CostModel,
  codec?: { times: CodecTimes; source: "plan" | "measured" },
): Promise<PlanFilePrice> {
  let tmodel = model;
  let tcost = cost;
  if (plan.tiles) {
    const tiled = tileModel(model, plan.tiles.stacks, { slicesFirst: true });
    tmodel = await analyzeModel(tiled.model, {
      source: model.graph.source,
      noFold: true,
      inputShapes: Object.fromEntries(
        model.graph.inputs.map((v) => [v.name, model.types.get(v.name)!.shape]),
      ),
    });
    tcost = new TiledCostModel(cost, model, tmodel, tiled.origin);
  }
  const assignment = planToAssignment(tmodel, plan);
  const { stageOf } = assignment;
  const nodes = tmodel.graph.nodes
    .filter((n) => !n.isConstant && stageOf[n.index] >= 0)
    .sort((a, b) => stageOf[a.index] - stageOf[b.index] || a.index - b.index)
    .map((n) => n.index);
  const position = new Int32Array(tmodel.graph.nodes.length).fill(-1);
  nodes.forEach((i, q) => {
    position[i] = q;
  });
  const order: PartitionOrder = { nodes, position, strategy: "file" };
  const built = buildProblem(tmodel, order, cluster, tcost);
  const enc = plan.encodings;
  const sent = enc?.tensors.filter((t) => t.encoding !== "float32") ?? [];
  for (const t of sent)
    if (!built.tensors.some((x) => x.name === t.tensor))
      throw new ArgumentError(`plan encodings: '${t.tensor}' is not a tensor of the model`, {
        tensor: t.tensor,
        field: "encodings",
      });
  if (sent.length > 0 && !codec)
    throw new ArgumentError("plan encodings: pricing encoded cut tensors needs their codec times", {
      field: "encodings",
    });
  // Encoded tensors cross at their wire size and each side pays its codec time, as the planner priced them.
  const problem =
    sent.length > 0
      ? encodedProblem(
          built,
          new Map(sent.map((t) => [t.tensor, t.encoding as EncodingName])),
          codec!.times,
          new Map(sent.filter((t) => t.nonZero !== undefined).map((t) => [t.tensor, t.nonZero!])),
          (t) => tmodel.types.get(t)?.shape.at(-1),
        )
      : built;
  const index = new Map(problem.devices.map((d, i) => [d.name, i]));
  const stages: DagStage[] = [];
  nodes.forEach((i, q) => {
    const s = stageOf[i];
    if (stages[s]) stages[s].end = q + 1;
    else {
      const name = plan.stages[s].device;
      const device = index.get(name);
      if (device === undefined)
        throw new ArgumentError(`plan stage ${s}: device '${name}' is not in cluster ${cluster.name}`, {
          device: name,
          field: "cluster",
        });
      stages[s] = { device, start: q, end: q + 1 };
    }
  });
  const ev: DagEvaluation = evaluateDag(problem, stages);
  const name = (d: number) => problem.devices[d].name;
  return {
    latency: ev.latency,
    planLatency: plan.totals.latency,
    energy: ev.energy,
    stages: ev.stages.map((t, k) => ({
      index: k,
      device: name(t.device),
      nodes: stages[k].end - stages[k].start,
      start: t.start,
      finish: t.finish,
      time: t.time,
    })),
    transfers: ev.transfers.map((t) => ({
      fromStage: t.fromStage,
      toStage: t.toStage,
      from: name(t.from),
      to: name(t.to),
      bytes: t.bytes,
      time: t.finish - t.start,
    })),
    tiles: plan.tiles?.stacks.length ?? 0,
    branchRegions: plan.tiles?.branchRegions ?? 0,
    ...(enc && codec
      ? {
          encodings: {
            tensors: sent.map((t) => ({
              tensor: t.tensor,
              encoding: t.encoding as EncodingName,
              bytes: t.bytes,
              encodedBytes: t.encodedBytes,
            })),
            budget: formatBudget(enc.budget),
            fidelity: enc.fidelity,
            codecTimes: codec.source,
          },
        }
      : {}),
  };
}

/** The tables `cleave estimate --plan` prints. */
export function renderPlanPrice(path: string, price: PlanFilePrice, st: Style): string {
  const rows = [
    ["stage", "device", "nodes", "start", "finish", "compute"],
    ...price.stages.map((s) => [
      String(s.index),
      s.device,
      String(s.nodes),
      fmtTime(s.start),
      fmtTime(s.finish),
      fmtTime(s.time),
    ]),
  ];
  const tx = [
    ["from", "to", "bytes", "time"],
    ...price.transfers.map((t) => [
      `${t.from} (${t.fromStage < 0 ? "input" : t.fromStage})`,
      `${t.to} (${t.toStage >= price.stages.length ? "output" : t.toStage})`,
      fmtBytes(t.bytes),
      fmtTime(t.time),
    ]),
  ];
  const what = [
    price.tiles > 0 ? `${price.tiles} tile stack(s)` : "",
    price.branchRegions > 0 ? `${price.branchRegions} branch region(s)` : "",
  ].filter((s) => s !== "");
  return [
    `${st.bold(path)}: the plan's stages as a graph for one request${what.length > 0 ? ` (${what.join(", ")})` : ""}`,
    table(rows, st),
    "",
    table(tx, st),
    "",
    ...encodingRows(price, st),
    `latency ${fmtTime(price.latency)} (the plan file says ${fmtTime(price.planLatency)}), energy ${(price.energy * 1000).toFixed(3)} mJ per inference`,
  ].join("\n");
}

/** The encoded cut tensors' table and the plan's recorded fidelity (nothing for a float32 plan). */
function encodingRows(price: PlanFilePrice, st: Style): string[] {
  const e = price.encodings;
  if (!e) return [];
  if (e.tensors.length === 0)
    return [`fidelity budget ${e.budget}: every cut tensor stays float32 (no encoding paid or met it)`, ""];
  return [
    table(
      [
        ["cut tensor", "encoding", "bytes", "sent"],
        ...e.tensors.map((t) => [t.tensor, t.encoding, fmtBytes(t.bytes), fmtBytes(t.encodedBytes)]),
      ],
      st,
    ),
    "",
    `fidelity budget ${e.budget} (codec times ${e.codecTimes === "plan" ? "from the plan file" : "measured now on this machine"})`,
    `the plan measured on held-out inputs:    ${formatFidelity(e.fidelity.held)}`,
    `the plan measured on calibration inputs: ${formatFidelity(e.fidelity.calibration)}`,
    "",
  ];
}

/** `cleave estimate MODEL --plan plan.json`: prices the saved plan on its cluster (or --cluster). */
export async function estimatePlanFile(
  path: string,
  planPath: string,
  values: Record<string, string | boolean | string[] | undefined>,
  io: CliIO,
): Promise<number> {
  for (const f of ["stages", "cuts", "devices"] as const)
    if (values[f] !== undefined)
      throw new ArgumentError(`cleave estimate: --plan gives the stages; drop --${f}`, { field: f });
  const plan = readPlan(planPath);
  const cluster = clusterForPlan(str(values, "cluster"), plan, planPath);
  const inputs = modelInputs(values, planInputs(plan, planPath));
  const model = await loadForCli(path, inputs, io);
  const cost = costModelFor(model, cluster, {
    profiles: await withLocalProfiles(model, cluster, {}, io, progress(io, values.json !== true)),
    ...(inputs.inputShapes ? { inputShapes: inputs.inputShapes } : {}),
  });
  for (const t of plan.encodings?.tensors ?? [])
    if (!model.types.has(t.tensor))
      throw new ArgumentError(`${planPath}: encodings: '${t.tensor}' is not a tensor of ${path}`, {
        tensor: t.tensor,
        field: "encodings",
      });
  let codec: { times: CodecTimes; source: "plan" | "measured" } | undefined;
  if (plan.encodings) {
    const recorded = plan.encodings.codecTimes;
    if (recorded) codec = { times: recorded, source: "plan" };
    else if (plan.encodings.tensors.some((t) => t.encoding !== "float32")) {
      io.err(
        `cleave: ${planPath} does not record its codec times; timing the encodings with onnxruntime on this machine`,
      );
      codec = { times: await measureCodecTimes(), source: "measured" };
    } else codec = { times: {}, source: "plan" };
  }
  const price = await pricePlanFile(model, plan, cluster, cost, codec);
  if (bool(values, "json"))
    io.out(JSON.stringify({ model: path, plan: planPath, cluster: cluster.name, ...price }));
  else io.out(renderPlanPrice(planPath, price, style(io.isTTY)));
  return 0;
}
