import type { ParallelLanes } from "./report-parallel.js";
import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { enumerateCuts } from "../partition/cuts.js";
import { typeBytes } from "../ir/graph.js";
import type { PartitionOrder } from "../partition/order.js";
import { VERSION } from "../version.js";
import { type PipelineStep, pipelineSteps, type ScheduledBar, schedulePipeline } from "./report-schedule.js";

/**
 * Everything the HTML report shows, as plain JSON (it is embedded in the page). Times in s, sizes in bytes,
 * energy in J, throughput in requests/s, compute in MACs. Node positions are partition-order positions.
 */
export interface ReportInput {
  /** Page title (the model's name). */
  title: string;
  /** `cleave <version>`. */
  generator: string;
  model: ReportModel;
  devices: ReportDevice[];
  /** Compute nodes in partition order (`nodes[p].position === p`). */
  nodes: ReportNode[];
  /** Graph inputs (activations fed from outside) and the nodes reading them. */
  inputs: ReportTensor[];
  /** Graph outputs and the node producing them. */
  outputs: ReportTensor[];
  /** Activation edges between compute nodes (weights are not edges). */
  edges: ReportEdge[];
  /** Bytes crossing each boundary: `boundaryBytes[b]` for the boundary before position b (index 0 unused, 0). */
  boundaryBytes: number[];
  /** Number of tensors crossing each boundary, indexed like `boundaryBytes`. */
  boundaryTensors: number[];
  stages: ReportStage[];
  links: ReportLink[];
  /** Predicted figures of the chosen plan. */
  plan: ReportTotals & { planner?: string; objective?: string };
  baselines: ReportBaseline[];
  /** Other plans the planner found (latency/throughput/energy trade-offs), the chosen one included or not. */
  pareto: ReportTotals[];
  /** Measured results, when a bench was given. */
  bench?: ReportBench;
  /** A few consecutive requests through the pipeline, predicted and (with per-stage bench times) measured. */
  timeline: { requests: number; predicted: Timeline; measured?: Timeline };
  /** Where per-node measured latencies come from, when a profile was given. */
  profile?: { device: string; threads: number };
  /** Caveats shown under the header (e.g. how devices were priced). */
  notes: string[];
  /** One request of a tiled or branch plan as lanes per device. */
  parallel?: ParallelLanes;
  /** The cut tensors a plan made under a fidelity budget sends encoded, and the fidelity it measured. */
  encodings?: ReportEncodings;
}

/** Fidelity at the model's outputs against float32 (top-1/top-5 for classifiers only). */
export interface ReportFidelity {
  maxRelError: number;
  meanRelError: number;
  top1?: number;
  top5?: number;
  samples: number;
}

/** A plan's encodings as the report shows them (see the plan file's `encodings`). */
export interface ReportEncodings {
  /** The budget as flags write it (`top1=0.99`). */
  budget: string;
  /** Calibration inputs given as files, or generated (seeded random). */
  calibration: "given" | "generated";
  inputs: { calibration: number; held: number };
  /** False when the outputs are not [N, classes] logits (top-1/top-5 do not apply). */
  classifier: boolean;
  /** Each encoded cut tensor: bytes per inference as float32 and as sent. */
  tensors: Array<{ tensor: string; encoding: string; bytes: number; encodedBytes: number }>;
  fidelity: { calibration: ReportFidelity; held: ReportFidelity };
}

/** The analysed model in brief. */
export interface ReportModel {
  name: string;
  /** Path or zoo spec it was loaded from. */
  source: string;
  /** Compute nodes (partition order length). */
  nodes: number;
  macs: number;
  params: number;
  paramBytes: number;
  /** Partition-order strategy. */
  order: string;
}

/** A device of the cluster. */
export interface ReportDevice {
  name: string;
  kind: string;
  /** Memory capacity, bytes. */
  memory: number;
  /** float32 compute rate, MAC/s. */
  macsPerSecond: number;
  /** How its node latencies were obtained (e.g. "measured", "analytic"), when known. */
  pricing?: string;
}

/** One compute node. */
export interface ReportNode {
  name: string;
  op: string;
  position: number;
  /** Index into `stages`. */
  stage: number;
  outputs: ReportTensor[];
  macs: number;
  params: number;
  /** Predicted latency on each device, s, indexed like `devices`. */
  latency: number[];
  /** Measured latency in the profile, s (when a profile was given). */
  measured?: number;
}

/** An activation tensor. */
export interface ReportTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  /** For graph inputs: positions of the nodes reading it; for outputs: position of the producer. */
  nodes?: number[];
}

/** An activation flowing from one compute node to another. */
export interface ReportEdge {
  from: number;
  to: number;
  tensor: string;
  bytes: number;
  /** True when producer and consumer are in different stages (the tensor is sent over a link). */
  cut: boolean;
  /** On a cut sent encoded: the encoding and the bytes sent. */
  encoding?: string;
  sentBytes?: number;
}

/** One stage of the plan: a contiguous run of positions on one device, or on a replica group. */
export interface ReportStage {
  /** The device (the group's first device when the stage is replicated). */
  device: string;
  /** The replica group, when several devices run the stage: each device and its share of the requests. */
  replicas?: Array<{ device: string; share: number }>;
  /** First position and one past the last. */
  start: number;
  end: number;
  macs: number;
  /** Predicted compute latency per request, s. */
  latency: number;
  /** Predicted peak memory, bytes. */
  memory: number;
  /** Predicted energy per request, J. */
  energy: number;
  /** Tensors it sends to later stages or returns as graph outputs, with sizes (float32, and as sent when encoded). */
  sends: Array<{ name: string; bytes: number; encoding?: string; sentBytes?: number }>;
}

/** A transfer between consecutive steps of the pipeline. */
export interface ReportLink {
  from: string;
  to: string;
  /** Stage sending (-1: the input device) and receiving (`stages.length`: the output device). */
  fromStage: number;
  toStage: number;
  bytes: number;
  /** Predicted time per request, s. */
  time: number;
  energy: number;
}

/** Latency (s), throughput (requests/s) and energy (J per request) of one configuration. */
export interface ReportTotals {
  latency: number;
  throughput: number;
  energy: number;
  label?: string;
}

/** A reference configuration the plan is compared against. */
export interface ReportBaseline extends ReportTotals {
  name: string;
  description: string;
  /** The device when the baseline runs the whole model on one device. */
  singleDevice?: string;
  /** Peak memory on its busiest device, bytes (when known). */
  memory?: number;
  /** False when it does not fit (memory) on its devices. */
  feasible: boolean;
}

/** Measured results of `cleave bench` for the plan and possibly the baselines; times in ms as the runtime reports. */
export interface BenchInput {
  configurations: BenchConfiguration[];
  /** The measured speed-up as `cleave bench` computed it (runtime's speedupOf of the pooled throughputs). */
  speedup?: number;
  /** Configurations that measured faster than the plan, with the likely reason (runtime's benchFindings). */
  findings?: string[];
}

/** Measurements of one configuration. */
export interface BenchConfiguration {
  /** "plan" for the chosen plan, "single" for the best single device (matched by `devices`), else a baseline's name. */
  name: string;
  /** Device of each stage. */
  devices?: string[];
  /** Completed requests per second. */
  throughput: number;
  /** End-to-end latency percentiles, ms. */
  latencyMs: { p50: number; p95?: number; p99?: number; mean?: number };
  /** Per stage of the configuration: mean compute time per request and time to hand its output on, ms. */
  stages?: Array<{ computeMs: number; transferMs?: number }>;
  /** Mean time to bring the input to the first stage, ms. */
  inputTransferMs?: number;
  /** Latency percentiles of requests sent one at a time (what a predicted latency describes), ms. */
  aloneLatencyMs?: { p50: number; p95?: number; p99?: number; mean?: number };
  /**
   * Communication time of a request sent alone (its latency less its stages' onnxruntime time), ms: drawn as
   * the measured transfers, spread over the links by their predicted times, when `stages` gives none.
   */
  communicationMs?: number;
}

/** Bench results as the report shows them (s). */
export interface ReportBench {
  configurations: Array<{
    name: string;
    throughput: number;
    /** With the pipeline full. */
    latency: { p50: number; p95?: number; p99?: number; mean?: number };
    /** Requests sent one at a time. */
    aloneLatency?: { p50: number; p95?: number; p99?: number; mean?: number };
  }>;
  /** Measured speed-up of the plan over the best single device, as the bench computed it. */
  speedup?: number;
  findings: string[];
}

/** The steps of a pipeline and the bars of its Gantt chart. */
export interface Timeline {
  steps: PipelineStep[];
  bars: ScheduledBar[];
}

/** The plan as the report needs it, independent of the planner's own types. */
export interface ReportPlanInput {
  stages: Array<{
    device: string;
    /** The replica group of a replicated stage, with each device's share of the requests. */
    replicas?: Array<{ device: string; share: number }>;
    start: number;
    end: number;
    latency: number;
    memory: number;
    energy: number;
  }>;
  links: ReportLink[];
  totals: ReportTotals;
  baselines: ReportBaseline[];
  pareto?: ReportTotals[];
  planner?: string;
  objective?: string;
  encodings?: ReportEncodings;
}

/** Inputs of {@link buildReportInput}. */
export interface BuildReportArgs {
  model: AnalyzedModel;
  order: PartitionOrder;
  cluster: Cluster;
  /** Prices every node on every device (per-node latencies shown in the graph and the layer chart). */
  costModel: CostModel;
  plan: ReportPlanInput;
  /** Name shown as the title (default: the graph's source). */
  name?: string;
  /** How each device is priced, by name, shown in the device table. */
  pricing?: Record<string, string>;
  bench?: BenchInput;
  /** Per-node measured latency (s) by node name, and where it was measured. */
  profile?: { latency: Record<string, number>; device: string; threads: number };
  notes?: string[];
  /** Requests drawn in the timeline (default 4). */
  requests?: number;
}

/** Builds the report's data from cleave objects, checking the plan against the model and cluster. */
export function buildReportInput(args: BuildReportArgs): ReportInput {
  const { model, order, cluster, costModel, plan } = args;
  const { graph, types } = model;
  const n = order.nodes.length;
  checkStages(plan, n, cluster);
  const stageOf = new Int32Array(n);
  plan.stages.forEach((s, i) => {
    for (let p = s.start; p < s.end; p++) stageOf[p] = i;
  });
  const latencies = cluster.devices.map((d) => costModel.nodeLatencies(d));
  const tensor = (name: string): ReportTensor => {
    const t = types.get(name);
    return { name, dtype: t?.dtype ?? "unknown", shape: t ? [...t.shape] : [], bytes: typeBytes(t) };
  };
  const nodes: ReportNode[] = order.nodes.map((gi, p) => {
    const node = graph.nodes[gi];
    const r: ReportNode = {
      name: node.name,
      op: node.op,
      position: p,
      stage: stageOf[p],
      outputs: node.outputs.filter((o) => o !== "").map(tensor),
      macs: model.costs[gi].macs,
      params: model.costs[gi].params,
      latency: latencies.map((l) => l[gi]),
    };
    const m = args.profile?.latency[node.name];
    if (m !== undefined) r.measured = m;
    return r;
  });
  const edges: ReportEdge[] = [];
  const inputs: ReportTensor[] = [];
  const outputs: ReportTensor[] = [];
  const sends: Array<Map<string, number>> = plan.stages.map(() => new Map());
  const encoded = new Map((plan.encodings?.tensors ?? []).map((t) => [t.tensor, t]));
  const sent = (name: string) => {
    const e = encoded.get(name);
    return e ? { encoding: e.encoding, sentBytes: e.encodedBytes } : {};
  };
  for (const v of graph.values.values()) {
    if (v.kind === "initializer" || v.producer?.isConstant) continue;
    const readers = [
      ...new Set(v.consumers.filter((c) => !c.isConstant).map((c) => order.position[c.index])),
    ].sort((a, b) => a - b);
    const bytes = typeBytes(types.get(v.name));
    if (!v.producer) {
      if (readers.length > 0) inputs.push({ ...tensor(v.name), nodes: readers });
      continue;
    }
    const from = order.position[v.producer.index];
    if (v.isOutput) {
      outputs.push({ ...tensor(v.name), nodes: [from] });
      sends[stageOf[from]].set(v.name, bytes);
    }
    for (const to of readers) {
      const cut = stageOf[to] !== stageOf[from];
      edges.push({ from, to, tensor: v.name, bytes, cut, ...(cut ? sent(v.name) : {}) });
      if (cut) sends[stageOf[from]].set(v.name, bytes);
    }
  }
  const cuts = enumerateCuts(model, order);
  const boundaryBytes = [0, ...cuts.map((c) => c.bytes)];
  const boundaryTensors = [0, ...cuts.map((c) => c.tensors.length)];
  const stages: ReportStage[] = plan.stages.map((s, i) => ({
    device: s.device,
    ...(s.replicas ? { replicas: s.replicas.map((r) => ({ device: r.device, share: r.share })) } : {}),
    start: s.start,
    end: s.end,
    macs: nodes.slice(s.start, s.end).reduce((a, x) => a + x.macs, 0),
    latency: s.latency,
    memory: s.memory,
    energy: s.energy,
    sends: [...sends[i]].map(([name, bytes]) => ({ name, bytes, ...sent(name) })),
  }));
  const input: ReportInput = {
    title: args.name ?? graph.source,
    generator: `cleave ${VERSION}`,
    model: {
      name: args.name ?? graph.source,
      source: graph.source,
      nodes: n,
      macs: model.totals.macs,
      params: model.totals.params,
      paramBytes: model.totals.paramBytes,
      order: order.strategy,
    },
    devices: cluster.devices.map((d) => {
      const r: ReportDevice = {
        name: d.name,
        kind: d.kind,
        memory: d.memory,
        macsPerSecond: d.macsPerSecond.float32,
      };
      const p = args.pricing?.[d.name];
      if (p !== undefined) r.pricing = p;
      return r;
    }),
    nodes,
    inputs,
    outputs,
    edges,
    boundaryBytes,
    boundaryTensors,
    stages,
    links: plan.links,
    plan: { ...plan.totals, planner: plan.planner, objective: plan.objective },
    baselines: plan.baselines,
    pareto: plan.pareto ?? [],
    timeline: { requests: 0, predicted: { steps: [], bars: [] } },
    notes: args.notes ?? [],
    ...(plan.encodings ? { encodings: plan.encodings } : {}),
  };
  const requests = args.requests ?? 4;
  const predicted = reportSteps(input);
  input.timeline = { requests, predicted: { steps: predicted, bars: schedulePipeline(predicted, requests) } };
  if (args.profile) input.profile = { device: args.profile.device, threads: args.profile.threads };
  if (args.bench) {
    input.bench = reportBench(args.bench, input.baselines);
    const measured = measuredSteps(args.bench, input);
    if (measured) input.timeline.measured = { steps: measured, bars: schedulePipeline(measured, requests) };
  }
  return input;
}

/** The plan's predicted pipeline steps (input transfer, stage, link, ..., output transfer). */
export function reportSteps(input: Pick<ReportInput, "stages" | "links">): PipelineStep[] {
  return pipelineSteps(
    input.stages.map((s) => ({ device: s.device, time: s.latency })),
    input.links.map((l) => ({
      fromStage: l.fromStage,
      toStage: l.toStage,
      from: l.from,
      to: l.to,
      time: l.time,
    })),
  );
}

function reportBench(bench: BenchInput, baselines: readonly ReportBaseline[]): ReportBench {
  // "single" (cleave bench's best single device) is shown as the baseline running on that device.
  const nameOf = (c: BenchConfiguration) => {
    const d = c.devices?.length === 1 ? c.devices[0] : undefined;
    const b =
      c.name === "single" && d !== undefined ? baselines.find((x) => x.singleDevice === d) : undefined;
    return b?.name ?? c.name;
  };
  const out: ReportBench = {
    configurations: bench.configurations.map((c) => {
      const r: ReportBench["configurations"][number] = {
        name: nameOf(c),
        throughput: c.throughput,
        latency: scaleLatency(c.latencyMs),
      };
      if (c.aloneLatencyMs) r.aloneLatency = scaleLatency(c.aloneLatencyMs);
      return r;
    }),
    findings: bench.findings ?? [],
  };
  if (bench.speedup !== undefined) out.speedup = bench.speedup;
  return out;
}

/** The plan's pipeline steps with the bench's measured per-stage times, when it has them. */
function measuredSteps(bench: BenchInput, input: ReportInput): PipelineStep[] | undefined {
  const plan = bench.configurations.find((c) => c.name === "plan");
  const stages = plan?.stages;
  if (!plan || !stages) return undefined;
  if (stages.length !== input.stages.length) {
    throw new ArgumentError(
      `bench: configuration 'plan' has ${stages.length} stages but the plan has ${input.stages.length}`,
      { field: "configurations.plan.stages" },
    );
  }
  // Without per-link times, the measured communication of a request alone, spread over the links as predicted.
  const given = plan.inputTransferMs !== undefined || stages.some((s) => s.transferMs !== undefined);
  const predicted = input.links.reduce((a, l) => a + l.time, 0);
  const share = (l: ReportLink) => (predicted > 0 ? l.time / predicted : 1 / Math.max(1, input.links.length));
  const links = input.links.map((l) => {
    const ms = given
      ? l.fromStage === -1
        ? plan.inputTransferMs
        : stages[l.fromStage]?.transferMs
      : plan.communicationMs !== undefined
        ? plan.communicationMs * share(l)
        : undefined;
    return { fromStage: l.fromStage, toStage: l.toStage, from: l.from, to: l.to, time: (ms ?? 0) / 1000 };
  });
  return pipelineSteps(
    stages.map((s, i) => ({ device: input.stages[i].device, time: s.computeMs / 1000 })),
    links,
  );
}

function scaleLatency(l: BenchConfiguration["latencyMs"]): ReportBench["configurations"][number]["latency"] {
  const out: ReportBench["configurations"][number]["latency"] = { p50: l.p50 / 1000 };
  if (l.p95 !== undefined) out.p95 = l.p95 / 1000;
  if (l.p99 !== undefined) out.p99 = l.p99 / 1000;
  if (l.mean !== undefined) out.mean = l.mean / 1000;
  return out;
}

function checkStages(plan: ReportPlanInput, n: number, cluster: Cluster): void {
  if (plan.stages.length === 0) throw new ArgumentError("plan: no stages", { field: "stages" });
  let next = 0;
  plan.stages.forEach((s, i) => {
    if (s.start !== next || s.end <= s.start || s.end > n) {
      throw new ArgumentError(
        `plan: stage ${i} covers positions ${s.start}..${s.end} but must start at ${next} and end by ${n} (model has ${n} compute nodes; is it the plan of this model?)`,
        { field: `stages.${i}`, stage: i },
      );
    }
    for (const d of s.replicas ? s.replicas.map((r) => r.device) : [s.device]) {
      if (!cluster.devices.some((x) => x.name === d)) {
        throw new ArgumentError(
          `plan: stage ${i} runs on unknown device '${d}' (devices: ${cluster.devices.map((x) => x.name).join(", ")})`,
          { field: `stages.${i}.device`, device: d, stage: i },
        );
      }
    }
    next = s.end;
  });
  if (next !== n) {
    throw new ArgumentError(
      `plan: stages end at position ${next} but the model has ${n} compute nodes (is it the plan of this model?)`,
      {
        field: "stages",
      },
    );
  }
}
