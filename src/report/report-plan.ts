import type { Candidate, Evaluation } from "../partition/evaluate.js";
import { formatBudget } from "../partition/encodings.js";
import type { Plan } from "../partition/plan.js";
import type { ReportBaseline, ReportLink, ReportPlanInput, ReportTotals } from "./report-data.js";

/**
 * Stages, links and totals of a priced candidate (the partition evaluator's output) in the report's terms.
 * `deviceNames` maps the problem's device indices to names (the cluster's devices, in order). Transfers
 * between stages on the same device are dropped (nothing is sent).
 */
export function reportPlanFromEvaluation(
  deviceNames: readonly string[],
  candidate: Candidate,
  evaluation: Evaluation,
): Pick<ReportPlanInput, "stages" | "links" | "totals"> {
  const links: ReportLink[] = evaluation.transfers
    .filter((t) => t.from !== t.to)
    .map((t) => ({
      from: deviceNames[t.from],
      to: deviceNames[t.to],
      fromStage: t.boundary - 1,
      toStage: t.boundary,
      bytes: t.bytes,
      time: t.time,
      energy: t.energy,
    }));
  return {
    stages: candidate.stages.map((s, k) => ({
      device: deviceNames[s.device],
      start: s.start,
      end: s.end,
      latency: evaluation.stages[k].time,
      memory: evaluation.stages[k].memory,
      energy: evaluation.stages[k].energy,
    })),
    links,
    totals: totalsOf(evaluation),
  };
}

/** Latency, throughput and energy of an evaluation. */
export function totalsOf(
  e: Pick<Evaluation, "latency" | "throughput" | "energy">,
  label?: string,
): ReportTotals {
  const t: ReportTotals = { latency: e.latency, throughput: e.throughput, energy: e.energy };
  if (label !== undefined) t.label = label;
  return t;
}

/** The plan file's stages, links, totals, baselines and Pareto front in the report's terms. */
export function reportPlanFromPlan(plan: Plan): ReportPlanInput {
  const inf = (v: number | null) => v ?? Number.POSITIVE_INFINITY;
  return {
    stages: plan.stages.map((s) => ({
      device: s.device,
      ...(s.replicas ? { replicas: s.replicas.map((r) => ({ device: r.device, share: r.share })) } : {}),
      start: s.start,
      end: s.end,
      latency: s.latency,
      memory: s.memory,
      energy: s.energy,
    })),
    links: plan.links.map((l) => ({
      from: l.from,
      to: l.to,
      fromStage: l.fromStage,
      toStage: l.toStage,
      bytes: l.bytes,
      time: l.time,
      energy: l.energy,
    })),
    totals: totalsOf(plan.totals),
    baselines: plan.baselines.map((b): ReportBaseline => {
      const r: ReportBaseline = {
        name: b.name,
        description: b.reason !== undefined ? `${b.description} (${b.reason})` : b.description,
        latency: inf(b.totals.latency),
        throughput: b.totals.throughput,
        energy: inf(b.totals.energy),
        feasible: b.feasible,
      };
      if (b.singleDevice !== undefined) r.singleDevice = b.singleDevice;
      return r;
    }),
    pareto: (plan.pareto ?? []).map((x) => totalsOf(x, x.label)),
    planner: plan.planner.exact ? `${plan.planner.method} (optimal)` : plan.planner.method,
    objective: plan.objective,
    ...(plan.encodings
      ? {
          encodings: {
            budget: formatBudget(plan.encodings.budget),
            calibration: plan.encodings.calibration,
            inputs: { ...plan.encodings.inputs },
            classifier: plan.encodings.classifier,
            tensors: plan.encodings.tensors
              .filter((t) => t.encoding !== "float32")
              .map((t) => ({
                tensor: t.tensor,
                encoding: t.encoding,
                bytes: t.bytes,
                encodedBytes: t.encodedBytes,
              })),
            fidelity: plan.encodings.fidelity,
          },
        }
      : {}),
  };
}
