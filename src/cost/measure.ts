import type { ModelProto } from "onnx-buf";
import { createSession, type ort } from "../onnx/ort.js";
import { median } from "./stats.js";

/** Options for {@link measureLatency}. */
export interface MeasureOptions {
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** Timed runs (median taken). Default 15. */
  runs?: number;
  /** Untimed runs first. Default 3. */
  warmup?: number;
  /** Name used in errors. */
  source?: string;
}

/**
 * Wall-clock latency of running a model with onnxruntime, s: median of `runs` timed `session.run` calls after
 * `warmup` untimed ones, in a fresh session with graph optimization on (as deployed).
 */
export async function measureLatency(
  model: ModelProto | Uint8Array,
  feeds: Record<string, ort.Tensor>,
  opts: MeasureOptions = {},
): Promise<number> {
  const session = await createSession(model, { threads: opts.threads ?? 1, source: opts.source });
  try {
    const warmup = opts.warmup ?? 3;
    const runs = opts.runs ?? 15;
    const wall: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      if (i >= warmup) wall.push(Number(process.hrtime.bigint() - t0) * 1e-9);
    }
    return median(wall);
  } finally {
    await session.release();
  }
}
