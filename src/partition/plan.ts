import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import { writeOutputFile } from "../output-file.js";
import { type StageAssignment, validateAssignment } from "./assign.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { Objective, PlanConstraints } from "./constraints.js";
import type { PartitionOrder } from "./order.js";
import { PLAN_ENCODINGS, type PlanEncodings } from "./plan-encodings.js";

/** A local stage of a stage split over its device's core clusters. */
export interface PlanLocalStage {
  coreCluster: string;
  /** Positions [start, end) of the partition order. */
  start: number;
  end: number;
  /** Number of nodes. */
  nodes: number;
  /** Predicted time, s. */
  latency: number;
}

/**
 * One device of a replicated stage's group: it holds the stage's weights and runs a share of the requests
 * (in proportion to its speed, so a slow replica does not hold the others back).
 */
export interface PlanReplica {
  device: string;
  /** Fraction of the requests it runs; the shares of a stage sum to 1. */
  share: number;
  /** Predicted time of one request on it, s. */
  latency: number;
  /** Time between its requests while the pipeline is full (co-running and transfer CPU included), s. */
  period: number;
  memory: number;
  energy: number;
  coRun?: number;
}

/**
 * One stage of a plan. Predicted figures: latency s, memory bytes, energy J. A stage is run by one device, or
 * by a replica group (`replicas`): then `device` is the group's first device, `latency` and `energy` are the
 * share-weighted means over the replicas, `memory` the largest, and `period` the group's (1 / the sum of the
 * replicas' rates). Stages read tensors by name (`inputs`), so they form a graph: today each stage's inputs come
 * from earlier stages; use {@link stageDevices} to read a stage's devices.
 */
export interface PlanStage {
  index: number;
  /** Device name (the first of the group when the stage is replicated). */
  device: string;
  /** The replica group, when more than one device runs the stage (absent: `device` alone). */
  replicas?: PlanReplica[];
  /** Positions [start, end) in the partition order. */
  start: number;
  end: number;
  /** Names of the graph nodes it runs (compute nodes; Constant nodes go wherever they are read). */
  nodes: string[];
  /** Activations crossing into it (its cut), by name. */
  inputs: string[];
  latency: number;
  memory: number;
  energy: number;
  /**
   * Time between inferences in the pipeline when it differs from `latency`, s: the stage is a local pipeline,
   * or its device computes beside another device of the same host (`coRun` times slower).
   */
  period?: number;
  coRun?: number;
  /**
   * Time of the input device per request of this stage it feeds (it encodes the graph inputs and sends them
   * on: `PlanProblem.inputFeed`), s: the stage runs no faster than that, and the input device's own replica
   * gets what the feeding leaves.
   */
  inputFeed?: number;
  /** HiDP's second level: the stage split over its device's core clusters. */
  local?: PlanLocalStage[];
}

/** A transfer between stages (fromStage -1: the input device; toStage = stage count: the output device). */
export interface PlanLink {
  from: string;
  to: string;
  fromStage: number;
  toStage: number;
  /** Link name. */
  link: string;
  /** Bytes, time and energy per inference (for a pair of replicas: over the requests that take this pair). */
  bytes: number;
  time: number;
  energy: number;
  /** Fraction of the requests that take this pair of devices, when below 1 (replica groups at either end). */
  share?: number;
}

/** End-to-end figures: latency s, throughput inferences/s, energy J per inference. */
export interface PlanTotals {
  latency: number;
  throughput: number;
  energy: number;
}

/** A baseline priced beside the plan. Totals of an infeasible baseline may be null (unbounded). */
export interface PlanBaseline {
  name: string;
  description: string;
  feasible: boolean;
  reason?: string;
  singleDevice?: string;
  /** Stages: `device` is the first of the group when `replicas` lists a replica group. */
  stages: Array<{ device: string; nodes: number; replicas?: string[] }>;
  totals: { latency: number | null; throughput: number; energy: number | null };
  /** How many times better the plan is on its objective (>1: the plan wins); null when not comparable. */
  ratio: number | null;
}

/** A point of the Pareto front. */
export interface PlanParetoPoint extends PlanTotals {
  label?: string;
  stages: Array<{ device: string; start: number; end: number }>;
}

/**
 * The tile stacks of a plan (objective latency): the model is tiled as `stacks` say before its stages are
 * cut (see `tileModel`), so `split` and `run` rebuild the same tiled model. Also the predicted per-request
 * timeline (stage start and finish, s, indexed like `stages`), the halo's extra MACs and the search estimate, s.
 */
export interface PlanTiles {
  /** `fromTiles`: the stack reads the tiles of the stack before it, halo rows only between devices. */
  stacks: Array<{ from: string; to: string; tiles: number; weights?: number[]; fromTiles?: boolean }>;
  timeline: Array<{ start: number; finish: number }>;
  haloMacs: number;
  estimate: number;
  /** Fork/join regions whose branches the plan runs on several devices at once. */
  branchRegions?: number;
}

/** The plan file `cleave plan -o plan.json` writes and `cleave split/run --plan` read. */
export interface Plan {
  version: 1;
  /** Model path (relative to the current folder when written) or `zoo:NAME`. */
  model: string;
  inputShapes?: Record<string, number[]>;
  /** Input values the plan was made with (`--input-value`): they decide the model's `If`s, so splitting needs them. */
  inputValues?: Record<string, { shape: number[]; data: number[] }>;
  /** Cluster file path (or the cluster's name when it came from no file). */
  cluster: string;
  clusterName: string;
  order: PartitionOrder["strategy"];
  objective: Objective;
  constraints: PlanConstraints;
  /** How the plan was found: exact (proven optimal) or not, its lower bound, effort. */
  planner: {
    method: string;
    exact: boolean;
    lowerBound: number | null;
    labels: number;
    ms: number;
    /** What kept a search from covering every plan (budget, time limit, replica group size), when something did. */
    limited?: string;
    /** Why a latency plan runs no tiles or branches side by side, when they were searched and not kept. */
    parallel?: string;
  };
  stages: PlanStage[];
  links: PlanLink[];
  totals: PlanTotals;
  baselines: PlanBaseline[];
  pareto?: PlanParetoPoint[];
  paretoMethod?: "exact" | "nsga2";
  /** Cut tensors sent encoded under a fidelity budget, with the fidelity measured (absent: all float32). */
  encodings?: PlanEncodings;
  /** Tiled stacks and branch regions, when the plan runs row tiles or independent branches side by side. */
  tiles?: PlanTiles;
}

const NUM = z.number();
const NULLNUM = z.number().nullable();
const PLAN = z.object({
  version: z.literal(1),
  model: z.string().min(1),
  inputShapes: z.record(z.string(), z.array(z.int())).optional(),
  inputValues: z
    .record(z.string(), z.object({ shape: z.array(z.int().nonnegative()), data: z.array(z.number()) }))
    .optional(),
  cluster: z.string(),
  clusterName: z.string(),
  order: z.enum(["file", "depth-first", "least-live"]),
  objective: z.enum(["latency", "throughput", "energy"]),
  constraints: z.record(z.string(), z.unknown()),
  planner: z.object({
    method: z.string(),
    exact: z.boolean(),
    lowerBound: NULLNUM,
    labels: NUM,
    ms: NUM,
    limited: z.string().optional(),
    parallel: z.string().optional(),
  }),
  stages: z
    .array(
      z.object({
        index: z.int().min(0),
        device: z.string().min(1),
        start: z.int().min(0),
        end: z.int().min(1),
        nodes: z.array(z.string()).min(1),
        inputs: z.array(z.string()),
        latency: NUM,
        memory: NUM,
        energy: NUM,
        period: NUM.optional(),
        coRun: NUM.optional(),
        inputFeed: NUM.optional(),
        replicas: z
          .array(
            z.object({
              device: z.string().min(1),
              share: NUM.min(0).max(1),
              latency: NUM,
              period: NUM,
              memory: NUM,
              energy: NUM,
              coRun: NUM.optional(),
            }),
          )
          .min(2)
          .optional(),
        local: z
          .array(
            z.object({ coreCluster: z.string(), start: z.int(), end: z.int(), nodes: z.int(), latency: NUM }),
          )
          .optional(),
      }),
    )
    .min(1),
  links: z.array(
    z.object({
      from: z.string(),
      to: z.string(),
      fromStage: z.int(),
      toStage: z.int(),
      link: z.string(),
      bytes: NUM,
      time: NUM,
      energy: NUM,
      share: NUM.min(0).max(1).optional(),
    }),
  ),
  totals: z.object({ latency: NUM, throughput: NUM, energy: NUM }),
  baselines: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      feasible: z.boolean(),
      reason: z.string().optional(),
      singleDevice: z.string().optional(),
      stages: z.array(
        z.object({ device: z.string(), nodes: z.int(), replicas: z.array(z.string()).min(2).optional() }),
      ),
      totals: z.object({ latency: NULLNUM, throughput: NUM, energy: NULLNUM }),
      ratio: NULLNUM,
    }),
  ),
  pareto: z
    .array(
      z.object({
        latency: NUM,
        throughput: NUM,
        energy: NUM,
        label: z.string().optional(),
        stages: z.array(z.object({ device: z.string(), start: z.int(), end: z.int() })),
      }),
    )
    .optional(),
  paretoMethod: z.enum(["exact", "nsga2"]).optional(),
  encodings: PLAN_ENCODINGS.optional(),
  tiles: z
    .object({
      stacks: z.array(
        z.object({
          from: z.string().min(1),
          to: z.string().min(1),
          tiles: z.int().min(2),
          weights: z.array(z.number().positive()).optional(),
          fromTiles: z.boolean().optional(),
        }),
      ),
      timeline: z.array(z.object({ start: NUM, finish: NUM })),
      haloMacs: NUM,
      estimate: NUM,
      branchRegions: z.int().min(0).optional(),
    })
    .optional(),
});

/** Infinity and NaN become null in JSON; keep that explicit. */
function finite(_key: string, v: unknown): unknown {
  return typeof v === "number" && !Number.isFinite(v) ? null : v;
}

/** Writes a plan as JSON (atomically: a temporary file renamed into place). */
export function writePlan(path: string, plan: Plan): void {
  writeOutputFile(path, `${JSON.stringify(plan, finite, 2)}\n`);
}

/** Checks an object is a plan; errors name the source and the field. */
export function parsePlan(obj: unknown, source = "plan"): Plan {
  const r = PLAN.safeParse(obj);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    throw new ArgumentError(
      `${source}: not a cleave plan (${field.replace(/^\./, "") || "top level"}: ${issue.message})`,
      { file: source, field },
      "BAD_CONFIG",
    );
  }
  const plan = r.data as Plan;
  plan.stages.forEach((s, k) => {
    if (s.replicas && s.replicas[0].device !== s.device) {
      throw new ArgumentError(
        `${source}: stages[${k}]: 'device' must be the first device of 'replicas'`,
        { file: source, field: `stages[${k}].device` },
        "BAD_CONFIG",
      );
    }
    const group = stageDevices(s);
    const twice = group.find((d, i) => group.indexOf(d) !== i);
    if (twice !== undefined) {
      throw new ArgumentError(
        `${source}: stages[${k}].replicas: device '${twice}' is listed twice`,
        { file: source, field: `stages[${k}].replicas`, device: twice },
        "BAD_CONFIG",
      );
    }
    if (s.index !== k || s.end <= s.start || (k > 0 && s.start !== plan.stages[k - 1].end)) {
      throw new ArgumentError(
        `${source}: stages[${k}]: stages must be numbered in order and cover contiguous positions`,
        { file: source, field: `stages[${k}]` },
        "BAD_CONFIG",
      );
    }
  });
  return plan;
}

/** The devices that run a stage: its replica group, or its one device. */
export function stageDevices(stage: Pick<PlanStage, "device" | "replicas">): string[] {
  return stage.replicas ? stage.replicas.map((r) => r.device) : [stage.device];
}

/** Reads and checks a plan file. */
export function readPlan(path: string): Plan {
  if (!existsSync(path))
    throw new ArgumentError(`${path}: no such plan file`, { file: path }, "FILE_NOT_FOUND");
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ArgumentError(`${path}: not a JSON plan (${errorMessage(err)})`, { file: path }, "BAD_CONFIG");
  }
  return parsePlan(obj, path);
}

/**
 * The stage assignment of a plan for `model`, by node names (robust to node order). Throws when the plan's
 * nodes are not exactly the model's compute nodes ("plan.json was made for another model") or when its
 * stages would send data backwards.
 */
export function planToAssignment(model: AnalyzedModel, plan: Plan): StageAssignment {
  const { graph } = model;
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const stageOf = new Int32Array(graph.nodes.length).fill(-1);
  const other = (why: string) =>
    new ArgumentError(
      `plan.json was made for another model (${why}; the plan is for ${plan.model}, this is ${graph.source})`,
      { field: "plan" },
      "BAD_CONFIG",
    );
  for (const s of plan.stages) {
    for (const name of s.nodes) {
      const node = byName.get(name);
      if (!node || node.isConstant) throw other(`node '${name}' is not a compute node of the model`);
      if (stageOf[node.index] >= 0) throw other(`node '${name}' is in two stages`);
      stageOf[node.index] = s.index;
    }
  }
  const missing = graph.nodes.find((n) => !n.isConstant && stageOf[n.index] < 0);
  if (missing) throw other(`the model's node '${missing.name}' is in no stage`);
  const a = { stageOf, count: plan.stages.length };
  validateAssignment(model, a);
  return a;
}

/** Stage assignment from a stage per partition position (e.g. a DADS cut), for export. */
export function positionsToAssignment(
  model: AnalyzedModel,
  order: PartitionOrder,
  stageOfPosition: ArrayLike<number>,
  count: number,
): StageAssignment {
  const stageOf = new Int32Array(model.graph.nodes.length).fill(-1);
  order.nodes.forEach((node, q) => {
    stageOf[node] = stageOfPosition[q];
  });
  return { stageOf, count };
}
