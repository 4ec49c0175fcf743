import { join } from "node:path";
import { GraphBuilder } from "../onnx/builder.js";
import { createSession, randomTensor } from "../onnx/ort.js";
import { takeTrace } from "./ort-trace.js";
import { median } from "./stats.js";

/**
 * What running a stage model costs beyond its kernels, s: `fixed + perByteIn * input bytes + perByteOut *
 * output bytes + perByteLayout * bytes of boundary tensors in onnxruntime's blocked (NCHWc) layout`. Covers the
 * `session.run` call from JavaScript, copying outputs back, and the layout conversions a stage boundary adds
 * inside a run of blocked-layout convolutions. (Dispatch between kernels measured ~0 here: a whole run's wall
 * time is within a few percent of its profiled kernel times.)
 */
export interface StageOverhead {
  /** Per run, s. */
  fixed: number;
  /** Per byte of the stage's inputs, s/byte. */
  perByteIn: number;
  /** Per byte of the stage's outputs, s/byte. */
  perByteOut: number;
  /** Per byte converted to or from the blocked layout at a stage boundary, s/byte. */
  perByteLayout: number;
}

/** Options for {@link measureStageOverhead}. */
export interface OverheadProbeOptions {
  threads: number;
  /** Scratch folder for profiler traces. */
  dir: string;
  /** Runs per probe (median taken). Default 20. */
  runs?: number;
  onProgress?: (done: number, total: number) => void;
}

const MIB = 2 ** 20;

/** Probe models: one trivial kernel each, with small or large input and output (sizes in float32 elements). */
type Probe =
  | { kind: "in"; elements: number }
  | { kind: "out"; elements: number }
  | { kind: "layout"; channels: number; side: number };
const PROBES: readonly Probe[] = [
  { kind: "out", elements: 1 },
  { kind: "out", elements: MIB / 4 },
  { kind: "out", elements: MIB },
  { kind: "out", elements: 4 * MIB },
  { kind: "in", elements: MIB },
  { kind: "in", elements: 4 * MIB },
  { kind: "layout", channels: 32, side: 128 },
];

/**
 * Measures the stage overhead of this machine with probe models, each timed by wall clock (without the
 * profiler) and by onnxruntime's profiler: `fixed` is the gap (wall minus kernels) of a tiny model; `perByteOut`/`perByteIn` the median over
 * sizes of (gap - fixed) / bytes for models with a large output or input; `perByteLayout` the time of the
 * ReorderInput/ReorderOutput kernels around a blocked-layout 1x1 Conv per byte converted.
 */
export async function measureStageOverhead(opts: OverheadProbeOptions): Promise<StageOverhead> {
  const runs = opts.runs ?? 20;
  const warmup = 3;
  let done = 0;
  const total = PROBES.length * (warmup + runs);
  const gaps: Array<{ probe: Probe; gap: number; bytes: number }> = [];
  const layout: number[] = [];
  for (const [i, p] of PROBES.entries()) {
    const b = new GraphBuilder("probe");
    let inputShape: number[];
    let bytes: number;
    if (p.kind === "out") {
      inputShape = [1, 1];
      bytes = p.elements * 4;
      b.output(b.node("Expand", [b.input("x", "float32", inputShape), b.ints("shape", [1, p.elements])]));
    } else if (p.kind === "in") {
      inputShape = [1, p.elements];
      bytes = p.elements * 4;
      b.output(b.node("ReduceMax", [b.input("x", "float32", inputShape)], { keepdims: 1 }));
    } else {
      inputShape = [1, p.channels, p.side, p.side];
      bytes = p.channels * p.side * p.side * 4;
      const w = b.weight("w", [p.channels, p.channels, 1, 1]);
      b.output(b.node("Conv", [b.input("x", "float32", inputShape), w]));
    }
    const prefix = join(opts.dir, `probe${i}`);
    // Kernel times from a profiled session; wall time from a session without the profiler (whose own
    // bookkeeping would count as overhead), the two alternating so both see the same machine load.
    const model = b.toModel();
    const profiled = await createSession(model, { threads: opts.threads, profilePrefix: prefix });
    const plain = await createSession(model, { threads: opts.threads });
    const feeds = { x: randomTensor("float32", inputShape) };
    const wall: number[] = [];
    for (let r = 0; r < warmup + runs; r++) {
      await profiled.run(feeds);
      const t0 = process.hrtime.bigint();
      await plain.run(feeds);
      if (r >= warmup) wall.push(Number(process.hrtime.bigint() - t0) * 1e-9);
      opts.onProgress?.(++done, total);
    }
    profiled.endProfiling();
    await profiled.release();
    await plain.release();
    const trace = takeTrace(prefix);
    const kernels: number[] = [];
    const reorder: number[] = [];
    const reorderOps = new Map(trace.kernels.map((k) => [k.name, k.op.startsWith("Reorder")]));
    trace.runs.slice(warmup).forEach((run) => {
      let k = 0;
      let re = 0;
      for (const [name, d] of run.kernels) {
        k += d;
        if (reorderOps.get(name)) re += d;
      }
      kernels.push(k);
      reorder.push(re);
    });
    if (p.kind === "layout") {
      // One ReorderInput and one ReorderOutput, each converting `bytes`.
      if (trace.kernels.some((k) => k.op.startsWith("Reorder"))) layout.push(median(reorder) / (2 * bytes));
    } else {
      gaps.push({ probe: p, gap: median(wall) - median(kernels), bytes });
    }
  }
  const fixed = Math.max(0, gaps[0].gap);
  const slope = (kind: "in" | "out") =>
    Math.max(0, median(gaps.filter((g) => g.probe.kind === kind).map((g) => (g.gap - fixed) / g.bytes)));
  const perByteIn = slope("in");
  const perByteOut = slope("out");
  const perByteLayout = layout.length > 0 ? layout[0] : 0;
  return { fixed, perByteIn, perByteOut, perByteLayout };
}
