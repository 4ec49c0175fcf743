import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelProto } from "onnx-buf";
import { createSession, type ort } from "../onnx/ort.js";
import { takeTrace } from "./ort-trace.js";
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

/** Result of {@link measurePaired}: medians in s, and the median of the per-pair ratios. */
export interface PairedLatency {
  /** Median wall time of the measured model, s. */
  latency: number;
  /** Median wall time of the reference model, s. */
  reference: number;
  /** Median over the pairs of (model run / the reference run just before it): steady under machine drift. */
  ratio: number;
  /** Fastest run of the model, s: the run least disturbed by other processes. */
  fastest: number;
  /** Fastest run of the reference, s. */
  referenceFastest: number;
}

/**
 * Latency of a model relative to a reference model (the whole model a segment came from), measured in pairs:
 * two warm sessions run alternately, reference first, `runs` timed pairs after `warmup` untimed ones. Both
 * runs of a pair see the same machine load, so the ratio follows a slowdown of the whole machine (on this
 * shared 2-vCPU host the wall-clock median of ShuffleNetV2 moved between 9 and 32 ms within ten minutes).
 */
export async function measurePaired(
  model: ModelProto | Uint8Array,
  feeds: Record<string, ort.Tensor>,
  reference: ModelProto | Uint8Array,
  referenceFeeds: Record<string, ort.Tensor>,
  opts: MeasureOptions = {},
): Promise<PairedLatency> {
  const threads = opts.threads ?? 1;
  const ref = await createSession(reference, { threads, source: opts.source });
  try {
    const session = await createSession(model, { threads, source: opts.source });
    try {
      const warmup = opts.warmup ?? 3;
      const runs = opts.runs ?? 15;
      const a: number[] = [];
      const b: number[] = [];
      const time = async (s: typeof session, f: Record<string, ort.Tensor>) => {
        const t0 = process.hrtime.bigint();
        await s.run(f);
        return Number(process.hrtime.bigint() - t0) * 1e-9;
      };
      for (let i = 0; i < warmup + runs; i++) {
        const r = await time(ref, referenceFeeds);
        const m = await time(session, feeds);
        if (i >= warmup) {
          b.push(r);
          a.push(m);
        }
      }
      return {
        latency: median(a),
        reference: median(b),
        ratio: median(a.map((v, i) => v / b[i])),
        fastest: Math.min(...a),
        referenceFastest: Math.min(...b),
      };
    } finally {
      await session.release();
    }
  } finally {
    await ref.release();
  }
}

/**
 * Kernel time of a model, s: the sum over its kernels of each kernel's median over `runs` profiled runs (after
 * `warmup`), in a fresh session with graph optimization on. Another process preempting this one lengthens the
 * one kernel it interrupts, so per-kernel medians stay near the undisturbed times where the wall-clock median
 * of a model running about one scheduler slice (~10 ms) does not. Excludes the `session.run` overhead.
 */
export async function measureKernelTime(
  model: ModelProto | Uint8Array,
  feeds: Record<string, ort.Tensor>,
  opts: MeasureOptions = {},
): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "cleave-kernels-"));
  try {
    const session = await createSession(model, {
      threads: opts.threads ?? 1,
      source: opts.source,
      profilePrefix: join(dir, "k"),
    });
    const warmup = opts.warmup ?? 3;
    const runs = opts.runs ?? 15;
    try {
      for (let i = 0; i < warmup + runs; i++) await session.run(feeds);
      session.endProfiling();
    } finally {
      await session.release();
    }
    const measured = takeTrace(join(dir, "k")).runs.slice(warmup);
    const names = new Set(measured.flatMap((r) => [...r.kernels.keys()]));
    let sum = 0;
    for (const k of names) sum += median(measured.map((r) => r.kernels.get(k) ?? 0));
    return sum;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
