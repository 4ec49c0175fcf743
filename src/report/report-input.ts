import type { Cluster } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import { modelIdentity, type Profile } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { orderWith } from "../partition/order.js";
import { type Plan, planToAssignment } from "../partition/plan.js";
import { planStageOrder } from "../partition/plan-parallel.js";
import { type BenchInput, buildReportInput, type ReportInput } from "./report-data.js";
import { parallelLanes } from "./report-parallel.js";
import { reportPlanFromPlan } from "./report-plan.js";

/** Inputs of {@link reportInputFrom}. */
export interface ReportSources {
  model: AnalyzedModel;
  /** The plan, as `cleave plan` writes it. */
  plan: Plan;
  cluster: Cluster;
  bench?: BenchInput;
  /** A profile of this model (per-node measured latency), shown beside the predictions. */
  profile?: Profile;
  /** Profiles by device name, used to price nodes on those devices (as the planner did). */
  profiles?: Record<string, Profile>;
  /** File the profile came from, for errors. */
  profileFile?: string;
  /** Input shapes the model was analysed at (profiles measured at other shapes are refused). */
  inputShapes?: Record<string, number[]>;
  name?: string;
}

/**
 * The report's data from cleave objects: checks that the plan and profile belong to this model, rebuilds the
 * partition order the plan refers to, and prices every node on every device with the cluster's cost model
 * (profiles where devices have them, roofline otherwise).
 */
export function reportInputFrom(src: ReportSources): ReportInput {
  const { model, cluster } = src;
  // By node names first (a plan of another model is named as such), then positions in the plan's order.
  const assignment = planToAssignment(model, src.plan);
  // A tiled or branch plan numbers positions stage by stage (its model is the plan's rewrite).
  const order = src.plan.tiles
    ? planStageOrder(model, assignment.stageOf)
    : orderWith(model.graph, src.plan.order, model.types);
  for (const s of src.plan.stages) {
    const names = order.nodes.slice(s.start, s.end).map((i) => model.graph.nodes[i].name);
    if (names.length !== s.nodes.length || names.some((n, k) => n !== s.nodes[k])) {
      throw new ArgumentError(
        `plan: stage ${s.index}'s nodes are not positions ${s.start}..${s.end} of the model's ${src.plan.order} order`,
        { field: `stages[${s.index}]`, stage: s.index },
        "BAD_CONFIG",
      );
    }
  }
  for (const t of src.plan.encodings?.tensors ?? [])
    if (!model.types.has(t.tensor))
      throw new ArgumentError(
        `plan: encodings: '${t.tensor}' is not a tensor of ${model.graph.source}`,
        { field: "encodings", tensor: t.tensor },
        "BAD_CONFIG",
      );
  const plan = reportPlanFromPlan(src.plan);
  const cost = costModelFor(model, cluster, { inputShapes: src.inputShapes, profiles: src.profiles });
  const pricing: Record<string, string> = {};
  const how: string[] = [];
  for (const d of cluster.devices) {
    const p = cost.describe(d);
    pricing[d.name] = p.reference !== undefined ? `${p.source} (from ${p.reference})` : p.source;
    how.push(
      `${d.name}: ${PRICING[p.source]}${p.reference !== undefined ? ` from ${p.reference}'s profile` : ""}`,
    );
  }
  const notes = [`Predicted node latencies: ${how.join("; ")}.`];
  let profile: { latency: Record<string, number>; device: string; threads: number } | undefined;
  if (src.profile) {
    const file = src.profileFile ?? "profile";
    const id = modelIdentity(model.graph);
    if (src.profile.model.hash !== id.hash) {
      throw new ArgumentError(
        `${file}: profile of ${src.profile.model.file} (${nodes(src.profile.model.nodes)}), not of ${id.file} (${nodes(id.nodes)})`,
        { file },
        "BAD_CONFIG",
      );
    }
    profile = {
      latency: src.profile.latency,
      device: src.profile.device.cpu,
      threads: src.profile.device.threads,
    };
    notes.push(
      `Measured node latencies: profile on ${src.profile.device.cpu} with ${src.profile.device.threads} thread(s).`,
    );
  }
  const input = buildReportInput({
    model,
    order,
    cluster,
    costModel: cost,
    plan,
    name: src.name,
    pricing,
    bench: src.bench,
    profile,
    notes,
  });
  const lanes = parallelLanes(src.plan);
  if (lanes) input.parallel = lanes;
  return input;
}

const nodes = (n: number) => `${n} node${n === 1 ? "" : "s"}`;

const PRICING: Record<string, string> = {
  measured: "measured (own profile)",
  scaled: "scaled by MAC rate",
  analytic: "analytic roofline",
};
