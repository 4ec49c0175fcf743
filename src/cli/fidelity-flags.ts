import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { readNpy } from "../onnx/npy.js";
import { type EncodingName, parseEncodingName } from "../onnx/encoding.js";
import { ort } from "../onnx/ort.js";
import {
  Calibrator,
  type FidelityBudget,
  calibrationInputs,
  type Feeds,
  formatFidelity,
} from "../partition/calibrate.js";
import type { Objective, PlanConstraints } from "../partition/constraints.js";
import { type CodecTimes, formatBudget, parseFidelityBudget } from "../partition/encodings.js";
import { measureCodecTimes } from "../partition/calibrate.js";
import type { Plan } from "../partition/plan.js";
import type { PlanEncodings } from "../partition/plan-encodings.js";
import { type FidelityPlan, planWithFidelity } from "../partition/plan-fidelity.js";
import { fmtBytes } from "./format.js";
import { str, type ParsedFlags } from "./command.js";

/** The flags of planning under a fidelity budget, shared by plan and bench. */
export const FIDELITY_FLAGS = {
  fidelity: { type: "string" },
  "max-rel-error": { type: "string" },
  encodings: { type: "string" },
  calibration: { type: "string", multiple: true },
} as const;

/** Usage lines of {@link FIDELITY_FLAGS}. */
export const FIDELITY_USAGE = `  --fidelity        plan cut and encodings together under a budget: top1=0.99, top5=..., max-rel-error=...,
                    mean-rel-error=... (measured at the outputs against float32; no budget: all float32)
  --max-rel-error   the same as --fidelity max-rel-error=X (for models that are not classifiers)
  --encodings       encodings to try (default int4-channel,int4,int8-channel,int8,float16, the last three
                    also +sparse, and float32+sparse; float32 always). int4: 4-bit levels, two to a
                    byte; +sparse: zero-packed, lossless (sparse activations)
  --calibration     calibration inputs, .npy files (one per input set, for a one-input model), repeatable;
                    the first half calibrates, the rest is held out. Default: seeded random inputs (said so)`;

/** What the fidelity flags ask for: the budget, the encodings to try and calibration files. */
export interface FidelityRequest {
  budget: FidelityBudget;
  encodings?: EncodingName[];
  calibration?: string[];
}

/** The budget and options the flags give; undefined when no budget was asked for (then nothing changes). */
export function fidelityFromFlags(values: ParsedFlags["values"]): FidelityRequest | undefined {
  const budget = parseFidelityBudget(str(values, "fidelity"), str(values, "max-rel-error"));
  const list = str(values, "encodings")
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => parseEncodingName(s, "--encodings"));
  const cal = values.calibration as string[] | undefined;
  if (!budget) {
    if (list || cal)
      throw new ArgumentError("--encodings/--calibration: give a budget with --fidelity or --max-rel-error", {
        field: "fidelity",
      });
    return undefined;
  }
  return {
    budget,
    ...(list ? { encodings: list } : {}),
    ...(cal ? { calibration: cal.flatMap((c) => c.split(",")) } : {}),
  };
}

/** Calibration inputs from .npy files (each one model input set of a one-input model). */
function npyFeeds(model: AnalyzedModel, files: readonly string[]): Array<{ feeds: Feeds; source: string }> {
  const free = model.graph.inputs.filter((v) => !model.inputValues.has(v.name));
  if (free.length !== 1)
    throw new ArgumentError(
      `--calibration: .npy files give one input, and the model takes ${free.length} without a value (${free.map((v) => v.name).join(", ")})`,
      { field: "calibration" },
    );
  const name = free[0].name;
  return files.map((file) => {
    const a = readNpy(file);
    const dtype = model.types.get(name)?.dtype ?? "float32";
    if (dtype !== "float32")
      throw new ArgumentError(
        `--calibration: input '${name}' is ${dtype}; only float32 inputs are calibrated from .npy`,
        {
          field: "calibration",
          tensor: name,
        },
      );
    return { feeds: { [name]: new ort.Tensor("float32", Float32Array.from(a.data), a.shape) }, source: file };
  });
}

/**
 * Plans under the budget the flags give (see `planWithFidelity`), calibrating with their inputs; the calibrator
 * (with its measurements cached) and the codec times come back for re-planning under the same budget.
 */
export async function planUnderBudget(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  f: FidelityRequest,
  opts: {
    objective: Objective;
    constraints?: PlanConstraints;
    modelPath: string;
    replicas?: boolean;
    pareto?: boolean;
  },
  onStep?: (what: string) => void,
): Promise<FidelityPlan & { calibrator: Calibrator; codecTimes: CodecTimes }> {
  const given = f.calibration ? npyFeeds(model, f.calibration) : undefined;
  const inputs = calibrationInputs(model, given);
  if (inputs.held.length === 0)
    throw new ArgumentError(
      "--calibration: give at least two input files (half calibrate, half are held out)",
      {
        field: "calibration",
      },
    );
  const calibrator = new Calibrator(model, inputs);
  onStep?.("timing the encodings with onnxruntime");
  const codecTimes = await measureCodecTimes();
  const fp = await planWithFidelity(model, cluster, cost, {
    ...opts,
    budget: f.budget,
    calibrator,
    codecTimes,
    ...(f.encodings ? { encodings: f.encodings } : {}),
    onStep,
  });
  return { ...fp, calibrator, codecTimes };
}

/** Lines describing a plan's encodings and measured fidelity (none when it has no budget). */
export function renderEncodings(plan: Plan): string[] {
  const e = plan.encodings;
  if (!e) return [];
  const out = encodingLines(e);
  if (e.float32)
    out.push(
      `best float32 plan: ${e.float32.throughput.toPrecision(3)}/s, ${(e.float32.latency * 1e3).toFixed(1)} ms; this plan ${plan.totals.throughput.toPrecision(3)}/s, ${(plan.totals.latency * 1e3).toFixed(1)} ms`,
    );
  return out;
}

/** The budget, the calibration inputs, each cut tensor's encoding (bytes before -> after) and the fidelity. */
export function encodingLines(e: PlanEncodings): string[] {
  const out = [
    `fidelity budget ${formatBudget(e.budget)}; calibration inputs ${e.calibration === "generated" ? "generated (seeded random: give --calibration for real ones)" : "given"} (${e.inputs.calibration} calibration, ${e.inputs.held} held out)${e.classifier ? "" : "; the outputs are not [N, classes] logits, so top-1/top-5 do not apply"}`,
  ];
  if (e.tensors.length === 0)
    out.push("every cut tensor stays float32 (no encoding pays or meets the budget)");
  for (const t of e.tensors)
    out.push(`  ${t.tensor}: ${t.encoding}, ${fmtBytes(t.bytes)} -> ${fmtBytes(t.encodedBytes)}`);
  out.push(`measured on calibration inputs: ${formatFidelity(e.fidelity.calibration)}`);
  out.push(`measured on held-out inputs:    ${formatFidelity(e.fidelity.held)}`);
  return out;
}
