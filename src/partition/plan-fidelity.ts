import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { ArgumentError, CleaveError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import {
  type EncodingName,
  encodedElementBytes,
  isFourBit,
  isPacked,
  isPerChannel,
  minOpset,
  packsLastAxis,
  type TensorEncoding,
  wireBytes,
} from "../onnx/encoding.js";
import {
  type Calibrator,
  type Fidelity,
  type FidelityBudget,
  formatFidelity,
  isClassifier,
  meetsBudget,
  type TensorRange,
} from "./calibrate.js";
import type { Objective, PlanConstraints } from "./constraints.js";
import { type CodecTimes, encodedProblem, formatBudget, tensorEncoding } from "./encodings.js";
import { type ClusterPlan, planForCluster } from "./plan-cluster.js";
import type { PlanEncodings } from "./plan-encodings.js";
import { problemTensors } from "./problem.js";
import { choosePartitionOrder } from "./order.js";

/** The encodings a budget plan tries by default: each base encoding, and those of whole bytes zero-packed. */
export const DEFAULT_ENCODINGS: readonly EncodingName[] = [
  "int4-channel",
  "int4",
  "int8-channel",
  "int8",
  "float16",
  "int8-channel+sparse",
  "int8+sparse",
  "float16+sparse",
  "float32+sparse",
];

/** Options of {@link planWithFidelity}: those of `planForCluster`, the budget and what to try. */
export interface FidelityPlanOptions {
  objective: Objective;
  constraints?: PlanConstraints;
  modelPath?: string;
  pareto?: boolean;
  replicas?: boolean;
  budget: FidelityBudget;
  calibrator: Calibrator;
  codecTimes: CodecTimes;
  /**
   * Encodings to try, in order of preference among equal sizes (default int4-channel, int4, int8-channel, int8,
   * float16, and the 8- and 16-bit ones and float32 zero-packed).
   */
  encodings?: readonly EncodingName[];
  /** Least relative gain on the objective for encodings to be kept over the float32 plan (default 0.05). */
  minGain?: number;
  /** Most plan-and-calibrate rounds (default 64); past it the last float32-safe choice is kept. */
  maxRounds?: number;
  onStep?: (what: string) => void;
}

/** A plan made under a fidelity budget, with the best float32 plan beside it. */
export interface FidelityPlan {
  plan: ClusterPlan;
  /** The best float32 plan (undefined when none fits the constraints). */
  float32?: ClusterPlan;
  encodings: TensorEncoding[];
  /** Node indices that read each encoded tensor's decoded copy (consumer stages), as the stages will. */
  readers: Map<string, Set<number>>;
}

/** The cut tensors of a plan that cross between devices, and the nodes that read their decoded copies. */
export function cutReaders(
  model: AnalyzedModel,
  cp: ClusterPlan,
  inputDevice: string,
): Map<string, Set<number>> {
  const { stageOf } = cp.assignment;
  const out = new Map<string, Set<number>>();
  const graphInputs = new Set(model.graph.inputs.map((v) => v.name));
  for (const node of model.graph.nodes) {
    if (node.isConstant) continue;
    const s = stageOf[node.index];
    const group = cp.devices[s];
    for (const name of node.inputs) {
      const v = model.graph.values.get(name);
      if (!v || v.kind === "initializer" || v.producer?.isConstant) continue;
      const crosses = graphInputs.has(name)
        ? !(group.length === 1 && group[0] === inputDevice)
        : v.producer !== undefined && stageOf[v.producer.index] !== s;
      if (!crosses) continue;
      const r = out.get(name) ?? new Set<number>();
      out.set(name, r);
      r.add(node.index);
    }
  }
  return out;
}

/**
 * Plans cut and encodings together under a fidelity budget: plans with every candidate tensor at its cheapest
 * encoding not yet refused (a relaxation: a plan it finds is at least as good as any that honours the budget),
 * measures the encodings of the plan's cut tensors alone on the calibration inputs, refuses those that break
 * the budget and plans again, until every cut tensor's encoding is measured; then measures the plan's
 * combination (calibration, then held-out inputs), and when it breaks the budget refuses the worst tensor's
 * encoding and plans again. float32 always meets a budget, so it ends. When a constraint can only be met
 * with encodings that break the budget, the INFEASIBLE error names the best fidelity measured.
 */
export async function planWithFidelity(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  opts: FidelityPlanOptions,
): Promise<FidelityPlan> {
  const base = {
    objective: opts.objective,
    constraints: opts.constraints,
    modelPath: opts.modelPath,
    pareto: opts.pareto,
    replicas: opts.replicas,
  };
  if ((opts.budget.top1 !== undefined || opts.budget.top5 !== undefined) && !isClassifier(model))
    throw new ArgumentError(
      `--fidelity top1/top5: ${opts.modelPath ?? model.graph.source}'s outputs are not [N, classes] logits; give --max-rel-error instead`,
      { field: "fidelity" },
    );
  // No float32 plan may fit (a --min-fps only encodings reach): then there is none to compare with.
  let float32: ClusterPlan | undefined;
  try {
    float32 = planForCluster(model, cluster, cost, base);
  } catch (err) {
    if (!(err instanceof CleaveError && err.code === "INFEASIBLE")) throw err;
  }
  const order = choosePartitionOrder(model);
  const graphOutputs = new Set(model.graph.outputs.map((v) => v.name));
  const graphInputs = new Set(model.graph.inputs.map((v) => v.name));
  const opset = Number(
    model.graph.model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0n,
  );
  const prefs = (opts.encodings ?? DEFAULT_ENCODINGS).filter((e) => e !== "float32" && opset >= minOpset(e));
  const candidates = problemTensors(model, order)
    .filter((t) => !graphOutputs.has(t.name) && model.types.get(t.name)?.dtype === "float32")
    .map((t) => t.name);
  const shapeOf = (t: string) => model.types.get(t)?.shape ?? [];
  const rank = (t: string) => shapeOf(t).length;
  const table = new Map<string, Map<EncodingName, Fidelity>>();
  const refused = new Set<string>();
  const ranges = new Map<string, TensorRange>();
  // A zero-packed encoding's share of non-zero elements, once the tensor's range is measured.
  const nonZeroOf = (t: string, e: EncodingName): number | undefined =>
    isPacked(e) && ranges.has(t) ? tensorEncoding(t, e, ranges.get(t)).nonZero : undefined;
  const lastAxisOf = (t: string) => shapeOf(t).at(-1);
  const sizeOf = (t: string, e: EncodingName) =>
    wireBytes(e, elementsOf(model, t), nonZeroOf(t, e), lastAxisOf(t));
  // Packing is tried where it saves a tenth of the bytes at least (or the tensor's zeros are not measured yet).
  const options = (t: string): EncodingName[] =>
    prefs.filter(
      (e) =>
        (!isPerChannel(e) || rank(t) >= 2) &&
        (!isFourBit(e) || packsLastAxis(shapeOf(t))) &&
        // Graph inputs leave the coordinator or an encoder stage, which send dense.
        (!isPacked(e) || !graphInputs.has(t)) &&
        (!isPacked(e) ||
          !ranges.has(t) ||
          sizeOf(t, e) < 0.9 * elementsOf(model, t) * encodedElementBytes(e)),
    );
  const key = (t: string, e: EncodingName) => `${t}\u0000${e}`;
  let best: Fidelity | undefined;
  const better = (f: Fidelity) => {
    if (!best || f.maxRelError < best.maxRelError) best = f;
  };
  // Fewest bytes first; at equal bytes (zeros not measured yet) the dense encoding, which costs no packing.
  const sortedOptions = (t: string) =>
    [...options(t)].sort((a, b) => sizeOf(t, a) - sizeOf(t, b) || Number(isPacked(a)) - Number(isPacked(b)));
  const nonZeroMap = (chosen: ReadonlyMap<string, EncodingName>) => {
    const m = new Map<string, number>();
    for (const [t, e] of chosen) {
      const z = nonZeroOf(t, e);
      if (z !== undefined) m.set(t, z);
    }
    return m;
  };
  const maxRounds = opts.maxRounds ?? 64;
  let rounds = 0;
  for (let round = 1; round <= maxRounds; round++) {
    rounds = round;
    const assumed = new Map<string, EncodingName>();
    for (const t of candidates) {
      const e = sortedOptions(t).find((x) => !refused.has(key(t, x)));
      if (e) assumed.set(t, e);
    }
    let cp: ClusterPlan;
    try {
      cp = planForCluster(model, cluster, cost, {
        ...base,
        transformProblem: (p) => encodedProblem(p, assumed, opts.codecTimes, nonZeroMap(assumed), lastAxisOf),
      });
    } catch (err) {
      if (err instanceof CleaveError && err.code === "INFEASIBLE") {
        throw new CleaveError(
          "INFEASIBLE",
          `${err.message}; within the fidelity budget ${formatBudget(opts.budget)}${best ? ` (the best fidelity measured with encodings that would fit: ${formatFidelity(best)})` : ""}`,
          err.context,
        );
      }
      throw err;
    }
    const readers = cutReaders(model, cp, cluster.inputDevice);
    const cut = [...readers.keys()].filter((t) => assumed.has(t));
    const unmeasured = cut.filter((t) => !table.get(t)?.has(assumed.get(t)!));
    const needRanges = unmeasured.filter((t) => !ranges.has(t));
    if (needRanges.length > 0)
      for (const [t, r] of await opts.calibrator.ranges(needRanges)) ranges.set(t, r);
    if (unmeasured.length > 0) {
      opts.onStep?.(`round ${round}: calibrating ${unmeasured.length} cut tensor(s)`);
      // Each tensor's encodings are measured cheapest first until one meets the budget, in this round.
      for (const t of unmeasured) {
        if (!table.has(t)) table.set(t, new Map());
        for (const e of sortedOptions(t)) {
          if (refused.has(key(t, e)) || table.get(t)!.has(e)) continue;
          const f = await opts.calibrator.fidelity([tensorEncoding(t, e, ranges.get(t))]);
          table.get(t)!.set(e, f);
          better(f);
          if (meetsBudget(f, opts.budget)) break;
          refused.add(key(t, e));
        }
      }
      continue;
    }
    const encodings = cut.map((t) => tensorEncoding(t, assumed.get(t)!, ranges.get(t)));
    const worst = () =>
      cut.reduce((w, t) =>
        table.get(t)!.get(assumed.get(t)!)!.maxRelError > table.get(w)!.get(assumed.get(w)!)!.maxRelError
          ? t
          : w,
      );
    let refusedOne = false;
    for (const which of ["calibration", "held"] as const) {
      if (encodings.length === 0) break;
      const f = await opts.calibrator.fidelity(encodings, which, readers);
      better(f);
      if (!meetsBudget(f, opts.budget)) {
        const w = worst();
        opts.onStep?.(
          `round ${round}: the cut's encodings together break the budget on ${which} inputs; '${w}' goes back a step`,
        );
        refused.add(key(w, assumed.get(w)!));
        refusedOne = true;
        break;
      }
    }
    if (refusedOne) continue;
    // Keep float32 unless the encoded plan wins clearly: the extra stage on the input device and the codec
    // inside replica groups are priced only roughly (on hetero-pair a 0.2% predicted gain measured 0.72-0.92x).
    if (float32 && !clearlyBetter(opts.objective, cp, float32, opts.minGain ?? 0.05)) {
      opts.onStep?.(
        `round ${round}: the encoded plan is not ${Math.round(100 * (opts.minGain ?? 0.05))}% better than float32; keeping float32`,
      );
      break;
    }
    const sent = encodings.filter((e) => e.encoding !== "float32");
    const sentReaders = new Map(sent.map((e) => [e.tensor, readers.get(e.tensor)!]));
    const fCal = await opts.calibrator.fidelity(sent, "calibration", sentReaders);
    const fHeld = await opts.calibrator.fidelity(sent, "held", sentReaders);
    const record: PlanEncodings = {
      budget: opts.budget,
      calibration: opts.calibrator.inputs.generated ? "generated" : "given",
      inputs: {
        calibration: opts.calibrator.inputs.calibration.length,
        held: opts.calibrator.inputs.held.length,
      },
      tensors: sent.map((e) => {
        const bytes = 4 * elementsOf(model, e.tensor);
        return {
          ...e,
          bytes,
          encodedBytes: wireBytes(e.encoding, bytes / 4, e.nonZero, lastAxisOf(e.tensor)),
        };
      }),
      fidelity: { calibration: fCal, held: fHeld },
      classifier: isClassifier(model),
      ...(float32 ? { float32: float32.plan.totals } : {}),
      rounds: round,
      codecTimes: opts.codecTimes,
    };
    cp.plan.encodings = record;
    return { plan: cp, float32, encodings: sent, readers: sentReaders };
  }
  // Out of rounds, or no clear gain: the float32 plan honours any budget.
  if (!float32)
    throw new CleaveError(
      "INFEASIBLE",
      `no plan within the fidelity budget ${formatBudget(opts.budget)} was found in ${maxRounds} rounds`,
    );
  float32.plan.encodings = {
    budget: opts.budget,
    calibration: opts.calibrator.inputs.generated ? "generated" : "given",
    inputs: {
      calibration: opts.calibrator.inputs.calibration.length,
      held: opts.calibrator.inputs.held.length,
    },
    tensors: [],
    fidelity: { calibration: exact(), held: exact() },
    classifier: isClassifier(model),
    float32: float32.plan.totals,
    rounds,
    codecTimes: opts.codecTimes,
  };
  return { plan: float32, float32, encodings: [], readers: new Map() };
}

function elementsOf(model: AnalyzedModel, tensor: string): number {
  const t = model.types.get(tensor);
  return t ? t.shape.reduce((a, b) => a * b, 1) : 0;
}

/** True when `a` beats `b` on the objective by more than `gain` (relative). */
function clearlyBetter(objective: Objective, a: ClusterPlan, b: ClusterPlan, gain: number): boolean {
  const ta = a.plan.totals;
  const tb = b.plan.totals;
  if (objective === "throughput") return ta.throughput > tb.throughput * (1 + gain);
  if (objective === "latency") return ta.latency * (1 + gain) < tb.latency;
  return ta.energy * (1 + gain) < tb.energy;
}

/** The fidelity of float32 against itself. */
function exact(): Fidelity {
  return { maxRelError: 0, meanRelError: 0, samples: 0 };
}
