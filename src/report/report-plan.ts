import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { parseCluster } from "../cluster/load.js";
import type { Cluster } from "../cluster/types.js";
import { ArgumentError, errorMessage } from "../errors.js";
import type { Candidate, Evaluation } from "../partition/evaluate.js";
import type { OrderStrategy } from "../partition/order.js";
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

/**
 * What `cleave report` needs from a plan file: where the model and cluster are, how the order was built, and
 * the plan in the report's terms. (Interim reader of the plan.json shape below, until partition/plan.ts
 * defines the planner's own file; times s, sizes bytes, energy J.)
 */
export interface ReportPlanFile {
  /** Model path (relative paths are resolved against the plan file's folder) or `zoo:NAME`. */
  model: string;
  inputShapes?: Record<string, number[]>;
  /** Cluster file path (resolved like `model`) or the cluster itself. */
  cluster: string | Cluster;
  /** Partition-order strategy the plan's positions refer to (default: the one cleave chooses). */
  order?: OrderStrategy;
  plan: ReportPlanInput;
}

const TOTALS = z.object({ latency: z.number(), throughput: z.number(), energy: z.number() });
const NUM_OR_INF = z.union([z.number(), z.null()]).transform((v) => v ?? Number.POSITIVE_INFINITY);
const PLAN_FILE = z.object({
  model: z.string().min(1),
  inputShapes: z.record(z.string(), z.array(z.int())).optional(),
  cluster: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
  order: z.enum(["file", "depth-first", "least-live"]).optional(),
  planner: z.string().optional(),
  objective: z.string().optional(),
  stages: z
    .array(
      z.object({
        device: z.string(),
        start: z.int().min(0),
        end: z.int().min(1),
        latency: z.number(),
        memory: z.number(),
        energy: z.number(),
      }),
    )
    .min(1),
  links: z
    .array(
      z.object({
        from: z.string(),
        to: z.string(),
        fromStage: z.int(),
        toStage: z.int(),
        bytes: z.number(),
        time: z.number(),
        energy: z.number().default(0),
      }),
    )
    .default([]),
  totals: TOTALS,
  baselines: z
    .array(
      z.object({
        name: z.string(),
        description: z.string().default(""),
        singleDevice: z.string().optional(),
        totals: z.object({ latency: NUM_OR_INF, throughput: z.number(), energy: NUM_OR_INF }),
        memory: z.number().optional(),
        feasible: z.boolean().default(true),
      }),
    )
    .default([]),
  pareto: z.array(TOTALS.extend({ label: z.string().optional() })).default([]),
});

/** Reads and checks a plan file; errors name the file and the field. */
export function readReportPlanFile(path: string): ReportPlanFile {
  if (!existsSync(path)) throw new ArgumentError(`${path}: no such plan file`, { file: path }, "BAD_CONFIG");
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ArgumentError(`${path}: not a JSON plan (${errorMessage(err)})`, { file: path }, "BAD_CONFIG");
  }
  const r = PLAN_FILE.safeParse(obj);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    throw new ArgumentError(
      `${path}: not a cleave plan (${field.replace(/^\./, "") || "top level"}: ${issue.message})`,
      { file: path, field },
      "BAD_CONFIG",
    );
  }
  const f = r.data;
  const base = dirname(resolve(path));
  const local = (p: string) => (p.startsWith("zoo:") || isAbsolute(p) ? p : resolve(base, p));
  const out: ReportPlanFile = {
    model: local(f.model),
    cluster:
      typeof f.cluster === "string"
        ? local(f.cluster)
        : parseCluster(f.cluster, `${path}: cluster`, { baseDir: base }),
    plan: {
      stages: f.stages,
      links: f.links,
      totals: f.totals,
      baselines: f.baselines.map((b) => {
        const x: ReportBaseline = {
          name: b.name,
          description: b.description,
          ...b.totals,
          feasible: b.feasible,
        };
        if (b.singleDevice !== undefined) x.singleDevice = b.singleDevice;
        if (b.memory !== undefined) x.memory = b.memory;
        return x;
      }),
      pareto: f.pareto,
      planner: f.planner,
      objective: f.objective,
    },
  };
  if (f.inputShapes) out.inputShapes = f.inputShapes;
  if (f.order) out.order = f.order;
  return out;
}
