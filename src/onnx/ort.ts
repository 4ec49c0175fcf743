import { availableParallelism } from "node:os";
import type { ModelProto } from "onnx-buf";
import * as ort from "onnxruntime-node";
import { ArgumentError, errorMessage, RuntimeFault } from "../errors.js";
import type { DType } from "./dtype.js";
import { encodeModel } from "./model-io.js";
import { numel, seededRandomTensorData } from "./random.js";

export { ort };

/**
 * onnxruntime intra-op threads allowed per CPU this process may run on. More threads than CPUs only make
 * them take turns; four per CPU leaves room for hyper-threads and an oversubscribed test while refusing
 * the typo (`--threads 400`) that would start hundreds of spinning threads.
 */
export const MAX_THREADS_PER_CPU = 4;

/** The most intra-op threads a session may ask for here: MAX_THREADS_PER_CPU x the CPUs available. */
export function maxSessionThreads(): number {
  return MAX_THREADS_PER_CPU * Math.max(1, availableParallelism());
}

/**
 * Checks a thread count (a positive integer, at most {@link maxSessionThreads}); `what` names it in the
 * one-line ArgumentError (`--threads`, `threads`).
 */
export function checkThreads(threads: number, what = "threads"): number {
  const max = maxSessionThreads();
  if (!Number.isInteger(threads) || threads < 1)
    throw new ArgumentError(`${what}: expected a positive whole number of threads, got ${threads}`, {
      field: what,
    });
  if (threads > max)
    throw new ArgumentError(
      `${what}: ${threads} threads is above the limit of ${max} (${MAX_THREADS_PER_CPU} per CPU, ${max / MAX_THREADS_PER_CPU} CPUs here)`,
      { field: what },
    );
  return threads;
}

/** Options for an onnxruntime session. */
export interface SessionOptions {
  /** Intra-op threads; match the CPUs the process really has. Default 1, at most {@link maxSessionThreads}. */
  threads?: number;
  /** Turn on onnxruntime's profiler; the file prefix for its JSON trace. */
  profilePrefix?: string;
  /** Write the graph onnxruntime actually runs (after fusion) to this path (for mapping profiles to nodes). */
  optimizedModelPath?: string;
  /** Graph optimization level; "all" is what deployment uses. */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Name used in errors. */
  source?: string;
}

const SEVERITY = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;
type OrtLogLevel = keyof typeof SEVERITY;

/**
 * The onnxruntime log level cleave runs with: `CLEAVE_ORT_LOG` (verbose, info, warning, error, fatal), else
 * fatal, so onnxruntime's own lines (its warnings about unused initializers, its errors, which cleave
 * reports itself as one line) stay off the user's terminal unless asked for.
 */
export function ortLogLevel(): OrtLogLevel {
  const v = process.env.CLEAVE_ORT_LOG?.trim().toLowerCase();
  return v !== undefined && v in SEVERITY ? (v as OrtLogLevel) : "fatal";
}

/** Sets onnxruntime's process-wide log level (before its environment starts) from {@link ortLogLevel}. */
function quietOrt(): number {
  const level = ortLogLevel();
  ort.env.logLevel = level;
  return SEVERITY[level];
}

/**
 * Opens an onnxruntime-node CPU session on a model: bytes, a proto, or a file path (needed when the model
 * keeps tensors in external data files beside it). A thread count out of range is an ArgumentError. Every
 * session cleave opens goes through here, so onnxruntime logs at {@link ortLogLevel} everywhere.
 */
export async function createSession(
  model: ModelProto | Uint8Array | string,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const threads = checkThreads(opts.threads ?? 1);
  const source = typeof model === "string" || model instanceof Uint8Array ? model : encodeModel(model);
  const logSeverityLevel = quietOrt();
  try {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ["cpu"],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: opts.optimization ?? "all",
      enableProfiling: opts.profilePrefix !== undefined,
      profileFilePrefix: opts.profilePrefix,
      ...(opts.optimizedModelPath !== undefined ? { optimizedModelFilePath: opts.optimizedModelPath } : {}),
      logSeverityLevel: logSeverityLevel as 0 | 1 | 2 | 3 | 4,
    };
    // Two overloads (a path, bytes), hence two calls.
    return await (typeof source === "string"
      ? ort.InferenceSession.create(source, options)
      : ort.InferenceSession.create(source, options));
  } catch (err) {
    throw new RuntimeFault(
      "RUNTIME",
      `${opts.source ?? "model"}: onnxruntime cannot load it (${errorMessage(err)})`,
      {
        file: opts.source,
      },
    );
  }
}

/** An onnxruntime tensor of a dtype and shape filled with seeded pseudo-random data (uniform in [-1, 1) for floats). */
export function randomTensor(dtype: DType, shape: readonly number[], seed = 1): ort.Tensor {
  const data = seededRandomTensorData(dtype, numel(shape), seed);
  return new ort.Tensor(dtype as ort.Tensor.Type, data as ort.Tensor.DataType, [...shape]);
}
