import { readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { errorMessage, RuntimeFault } from "../errors.js";

/** One kernel of the graph onnxruntime ran, as its profiler names it. */
export interface TraceKernel {
  /** Kernel (optimized-graph node) name, without the `_kernel_time` suffix. */
  name: string;
  /** Operator onnxruntime ran (e.g. "Conv" for a fused Conv+BatchNormalization+Relu). */
  op: string;
  /** Bytes of its outputs (the profiler's `output_size`), 0 when not reported. */
  outputBytes: number;
}

/** Kernel times of one `session.run`, s, by kernel name, and the run's duration inside onnxruntime. */
export interface TraceRun {
  kernels: Map<string, number>;
  /** Duration of the `model_run` event, s. */
  modelRun: number;
}

/** A parsed onnxruntime profiler trace. */
export interface Trace {
  kernels: TraceKernel[];
  runs: TraceRun[];
}

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string; output_size?: string };
}

const KERNEL_SUFFIX = "_kernel_time";

/**
 * Parses the Chrome-trace JSON onnxruntime writes (`[{cat, name, ts, dur, args}]`, times in µs) into the
 * kernel times of each run. Node events are assigned to the `model_run` event whose interval holds them.
 */
export function parseTrace(events: unknown, source = "trace"): Trace {
  if (!Array.isArray(events))
    throw new RuntimeFault("RUNTIME", `${source}: not an onnxruntime profile trace`, { file: source });
  const runs: Array<TraceRun & { start: number; end: number }> = [];
  const kernelInfo = new Map<string, TraceKernel>();
  const nodeEvents: TraceEvent[] = [];
  for (const e of events as TraceEvent[]) {
    if (typeof e?.name !== "string" || typeof e.ts !== "number" || typeof e.dur !== "number") continue;
    if (e.cat === "Session" && e.name === "model_run") {
      runs.push({ kernels: new Map(), modelRun: e.dur / 1e6, start: e.ts, end: e.ts + e.dur });
    } else if (e.cat === "Node" && e.name.endsWith(KERNEL_SUFFIX)) {
      nodeEvents.push(e);
    }
  }
  runs.sort((a, b) => a.start - b.start);
  for (const e of nodeEvents) {
    const name = e.name!.slice(0, -KERNEL_SUFFIX.length);
    if (!kernelInfo.has(name)) {
      const outputBytes = Number(e.args?.output_size ?? 0);
      kernelInfo.set(name, {
        name,
        op: e.args?.op_name ?? "",
        outputBytes: Number.isFinite(outputBytes) ? outputBytes : 0,
      });
    }
    const run = findRun(runs, e.ts!);
    if (!run) continue;
    run.kernels.set(name, (run.kernels.get(name) ?? 0) + e.dur! / 1e6);
  }
  return {
    kernels: [...kernelInfo.values()],
    runs: runs.map(({ kernels, modelRun }) => ({ kernels, modelRun })),
  };
}

function findRun<T extends { start: number; end: number }>(runs: T[], ts: number): T | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid].end < ts) lo = mid + 1;
    else if (runs[mid].start > ts) hi = mid - 1;
    else return runs[mid];
  }
  return undefined;
}

/**
 * Reads and deletes the trace file onnxruntime wrote for `prefix` (it appends a timestamp and `.json`).
 * Call after `session.endProfiling()`.
 */
export function takeTrace(prefix: string): Trace {
  const dir = dirname(prefix);
  const stem = basename(prefix);
  const files = readdirSync(dir).filter((f) => f.startsWith(stem) && f.endsWith(".json"));
  if (files.length === 0)
    throw new RuntimeFault("RUNTIME", `onnxruntime wrote no profile trace for prefix ${prefix}`);
  const file = join(dir, files.sort()[files.length - 1]);
  let events: unknown;
  try {
    events = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new RuntimeFault("RUNTIME", `${file}: cannot read onnxruntime trace (${errorMessage(err)})`, {
      file,
    });
  } finally {
    for (const f of files) rmSync(join(dir, f), { force: true });
  }
  return parseTrace(events, file);
}
