import { z } from "zod";
import { ENCODINGS, type EncodingName, quantLevels, type TensorEncoding } from "../onnx/encoding.js";
import type { Fidelity, FidelityBudget } from "./calibrate.js";
import type { CodecTimes } from "./encodings.js";

/** One cut tensor of a plan sent encoded: what it was, what it became, bytes per inference. */
export interface PlanCutEncoding extends TensorEncoding {
  /** Bytes as float32, and as sent. */
  bytes: number;
  encodedBytes: number;
}

/**
 * The encodings a plan made under a fidelity budget (absent: every tensor float32). `split --plan` and
 * `run --plan` rebuild the same stage models from `tensors` (scales and zero points included).
 */
export interface PlanEncodings {
  budget: FidelityBudget;
  /** Where the calibration inputs came from: the user's files, or seeded random inputs (then say so). */
  calibration: "given" | "generated";
  /** Calibration and held-out inputs used (each a full set of model inputs). */
  inputs: { calibration: number; held: number };
  tensors: PlanCutEncoding[];
  /** The plan's combination of encodings, measured at the model's outputs against float32. */
  fidelity: { calibration: Fidelity; held: Fidelity };
  /** False when the model's outputs are not [N, classes] logits (top-1/top-5 then mean nothing). */
  classifier: boolean;
  /** The best float32 plan's predicted totals, for comparison (absent when no float32 plan fits). */
  float32?: { latency: number; throughput: number; energy: number };
  /** Planning rounds (plan, calibrate the cut, plan again) until the cut's encodings were all measured. */
  rounds: number;
  /**
   * The encode/decode times the planner priced (so `cleave estimate --plan` prices the same; absent in plan
   * files written before they were recorded, when estimate measures them again).
   */
  codecTimes?: CodecTimes;
}

const FIDELITY = z.object({
  maxRelError: z.number(),
  meanRelError: z.number(),
  top1: z.number().optional(),
  top5: z.number().optional(),
  samples: z.int(),
});

const CODEC = z.object({ encode: z.number().nonnegative(), decode: z.number().nonnegative() });

/** The zod schema of {@link PlanEncodings} (a plan file's `encodings`). */
export const PLAN_ENCODINGS = z.object({
  budget: z.object({
    top1: z.number().optional(),
    top5: z.number().optional(),
    maxRelError: z.number().optional(),
    meanRelError: z.number().optional(),
  }),
  calibration: z.enum(["given", "generated"]),
  inputs: z.object({ calibration: z.int(), held: z.int() }),
  tensors: z.array(
    z
      .object({
        tensor: z.string().min(1),
        encoding: z.enum(ENCODINGS as [string, ...string[]]),
        scale: z.array(z.number().positive()).optional(),
        zeroPoint: z.array(z.int().min(0).max(255)).optional(),
        nonZero: z.number().min(0).max(1).optional(),
        bytes: z.number(),
        encodedBytes: z.number(),
      })
      .refine((t) => (t.zeroPoint ?? []).every((zp) => zp <= quantLevels(t.encoding as EncodingName)), {
        message: "zero points of a 4-bit encoding are 0..15",
        path: ["zeroPoint"],
      }),
  ),
  fidelity: z.object({ calibration: FIDELITY, held: FIDELITY }),
  classifier: z.boolean(),
  float32: z.object({ latency: z.number(), throughput: z.number(), energy: z.number() }).optional(),
  rounds: z.int(),
  codecTimes: z
    .object({
      hostMacsPerSecond: z.number().positive().optional(),
      ...Object.fromEntries(ENCODINGS.filter((e) => e !== "float32").map((e) => [e, CODEC.optional()])),
    })
    .optional(),
});

/** Typed view of a parsed `encodings` object. */
export type ParsedPlanEncodings = z.infer<typeof PLAN_ENCODINGS>;

export type { Fidelity as PlanFidelity };
