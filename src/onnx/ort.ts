import type { ModelProto } from "onnx-buf";
import * as ort from "onnxruntime-node";
import { errorMessage, RuntimeFault } from "../errors.js";
import type { DType } from "./dtype.js";
import { encodeModel } from "./model-io.js";
import { numel, seededRandomTensorData } from "./random.js";

export { ort };

/** Options for an onnxruntime session. */
export interface SessionOptions {
  /** Intra-op threads; match the CPUs the process really has. Default 1. */
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

/** Opens an onnxruntime-node CPU session on a model (bytes or proto). */
export async function createSession(
  model: ModelProto | Uint8Array,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : encodeModel(model);
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: ["cpu"],
      intraOpNumThreads: opts.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: opts.optimization ?? "all",
      enableProfiling: opts.profilePrefix !== undefined,
      profileFilePrefix: opts.profilePrefix,
      ...(opts.optimizedModelPath !== undefined ? { optimizedModelFilePath: opts.optimizedModelPath } : {}),
      logSeverityLevel: 3,
    });
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
