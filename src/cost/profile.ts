import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, platform, arch, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, type ModelProto, ModelProtoSchema, NodeProtoSchema } from "onnx-buf";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import { writeOutputFile } from "../output-file.js";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { inputFeeds } from "../ir/input-values.js";
import type { Graph } from "../ir/graph.js";
import { loadModel } from "../onnx/model-io.js";
import { createSession, ort } from "../onnx/ort.js";
import { typeBytes } from "../ir/graph.js";
import { mapKernels, type OptimizedNode } from "./kernel-map.js";
import { takeTrace } from "./ort-trace.js";
import { type StageOverhead, measureStageOverhead } from "./overhead-probe.js";
import { median } from "./stats.js";

/** Identifies the model a profile was measured on, so a profile is never applied to another model. */
export interface ModelIdentity {
  /** File name (or source name) of the model. */
  file: string;
  /** Number of nodes of its graph. */
  nodes: number;
  /** SHA-256 (hex) of the nodes' unique names, operators and weight shapes, in graph order. */
  hash: string;
}

/** The machine and settings a profile was measured with. */
export interface ProfileDevice {
  /** CPU model (`os.cpus()[0].model`). */
  cpu: string;
  /** Logical CPUs the machine has. */
  cpus: number;
  /** onnxruntime intra-op threads used. */
  threads: number;
  platform: string;
  arch: string;
  /** onnxruntime version. */
  onnxruntime: string;
}

/**
 * Per-node latencies of one model on one device, measured with onnxruntime's profiler (format of
 * `cleave profile -o profile.json`). All times in s.
 */
export interface Profile {
  format: "cleave-profile";
  version: 1;
  model: ModelIdentity;
  device: ProfileDevice;
  /** Shapes of the graph inputs it was measured with. */
  inputShapes: Record<string, number[]>;
  warmup: number;
  runs: number;
  /**
   * Median latency of each node, by node name: the kernel time of nodes that ran their own kernel (with the
   * time of nodes fused into it, and of layout conversions onnxruntime inserted for it); 0 for fused and
   * removed nodes.
   */
  latency: Record<string, number>;
  /** For each fused node: the node whose kernel ran it. */
  fusedInto: Record<string, string>;
  /** Nodes onnxruntime removed (constant-folded or eliminated). */
  removed: string[];
  /** Nodes whose kernel runs in onnxruntime's blocked (NCHWc) layout, so a stage boundary next to them converts. */
  blocked: string[];
  /**
   * Latency of each fused node when it runs alone (measured with graph optimization off): what it costs when a
   * stage boundary separates it from the kernel it is normally fused into.
   */
  standalone: Record<string, number>;
  /** Median per run of kernel time charged to no node. */
  unattributed: number;
  /** Median per run of the summed kernel times (profiled session). */
  kernelTotal: number;
  /** Median wall time of a whole `session.run` (a separate session without the profiler). */
  wholeRun: number;
  /**
   * Factor taking the per-node medians to real runs: (wholeRun - the whole model's stage overhead) / sum of the
   * per-node medians. Corrects the profiler's own cost and the skew of per-node medians (a sum of medians runs
   * below the median of sums when kernel times have long tails). Predictions multiply node times by it.
   * Bounded to [1/1.15, 1.15]: beyond that the whole-run timing caught a burst of load from other processes.
   */
  scale: number;
  /** Cost of running any stage model beyond its kernels, measured on this device. */
  overhead: StageOverhead;
}

/** Progress of a profile run: a phase and how many of its steps are done. */
export interface ProfileProgress {
  phase: "fused" | "unfused" | "overhead";
  done: number;
  total: number;
}

/** Options for {@link profileModel}. */
export interface ProfileOptions {
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** Measured runs (median taken). Default 10. */
  runs?: number;
  /** Warm-up runs before measuring. Default 5. */
  warmup?: number;
  /** Shapes for graph inputs with symbolic dimensions, by name. */
  inputShapes?: Record<string, number[]>;
  /** Name of the model in the profile and in errors, when a ModelProto is passed. */
  source?: string;
  /** Called after every run. */
  onProgress?: (p: ProfileProgress) => void;
  /** An already analysed model (skips analysing `model` again). */
  analyzed?: AnalyzedModel;
}

/**
 * Identity of a model's graph: file name, node count and a hash of unique node names, operators and the shapes
 * of the weights they read (so a wider or narrower variant of the same architecture is another model).
 */
export function modelIdentity(graph: Graph): ModelIdentity {
  const h = createHash("sha256");
  for (const n of graph.nodes) {
    const weights = n.inputs.map((t) => {
      const w = t === "" ? undefined : graph.values.get(t)?.initializer;
      return w ? w.dims.join("x") : "";
    });
    h.update(`${n.name}\t${n.op}\t${weights.join(",")}\n`);
  }
  return { file: basename(graph.source), nodes: graph.nodes.length, hash: h.digest("hex") };
}

/**
 * A copy of the graph's model whose nodes carry the graph's unique names (ONNX allows empty or repeated node
 * names; onnxruntime's profiler names kernels after nodes). Weights are shared, not copied.
 */
export function namedModel(graph: Graph): ModelProto {
  const src = graph.model;
  const g = src.graph!;
  const names = new Map(graph.nodes.map((n) => [n.proto, n.name]));
  return create(ModelProtoSchema, {
    ...src,
    graph: create(GraphProtoSchema, {
      ...g,
      node: g.node.map((p) => create(NodeProtoSchema, { ...p, name: names.get(p) ?? p.name })),
    }),
  });
}

/**
 * Measures the per-node latency of a model on this machine with onnxruntime's own profiler: warm-up runs,
 * then `runs` profiled runs (median per node), kernels mapped back to the original nodes (see mapKernels), a
 * second profile with graph optimization off for the standalone time of fused nodes, the whole-run wall time
 * from a session without the profiler, and the per-stage overhead of this machine.
 */
export async function profileModel(model: string | ModelProto, opts: ProfileOptions = {}): Promise<Profile> {
  const source = typeof model === "string" ? model : (opts.source ?? "model");
  const analyzed =
    opts.analyzed ??
    (await analyzeModel(typeof model === "string" ? loadModel(model) : model, {
      source,
      inputShapes: opts.inputShapes,
    }));
  const { graph } = analyzed;
  const threads = opts.threads ?? 1;
  const runs = opts.runs ?? 10;
  const warmup = opts.warmup ?? 5;
  const unfusedRuns = Math.max(3, Math.ceil(runs / 2));
  const feeds = inputFeeds(analyzed);
  const proto = namedModel(graph);
  const dir = mkdtempSync(join(tmpdir(), "cleave-profile-"));
  const progress = (phase: ProfileProgress["phase"], done: number, total: number) =>
    opts.onProgress?.({ phase, done, total });

  try {
    // 1. Profiled runs of the optimized graph (which is also written out, to map kernels to nodes), each
    // followed by a run of a session without the profiler for the wall time: alternating them exposes both to
    // the same machine load.
    const optPath = join(dir, "optimized.onnx");
    const fused = await createSession(proto, {
      threads,
      profilePrefix: join(dir, "fused"),
      optimizedModelPath: optPath,
      source,
    });
    const timed = await createSession(proto, { threads, source });
    const wall: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      await fused.run(feeds);
      const t0 = process.hrtime.bigint();
      await timed.run(feeds);
      if (i >= warmup) wall.push(Number(process.hrtime.bigint() - t0) * 1e-9);
      progress("fused", i + 1, warmup + runs);
    }
    fused.endProfiling();
    await fused.release();
    await timed.release();
    const trace = takeTrace(join(dir, "fused"));
    const optimized = readOptimized(optPath);
    const mapping = mapKernels(graph, optimized, new Map(trace.kernels.map((k) => [k.name, k.op])));

    const measured = trace.runs.slice(warmup);
    const perNode: number[][] = graph.nodes.map(() => []);
    const unattributed: number[] = [];
    const kernelTotal: number[] = [];
    for (const run of measured) {
      const t = new Float64Array(graph.nodes.length);
      let lost = 0;
      let total = 0;
      for (const [k, dur] of run.kernels) {
        total += dur;
        const node = mapping.kernelNode.get(k) ?? -1;
        if (node >= 0) t[node] += dur;
        else lost += dur;
      }
      t.forEach((v, i) => {
        perNode[i].push(v);
      });
      unattributed.push(lost);
      kernelTotal.push(total);
    }
    const latency: Record<string, number> = {};
    const fusedInto: Record<string, string> = {};
    const removed: string[] = [];
    const blockedKernels = new Set(optimized.filter((o) => o.domain === BLOCKED_DOMAIN).map((o) => o.name));
    const blockedNodes = new Set<number>();
    for (const k of blockedKernels) {
      const node = mapping.kernelNode.get(k) ?? -1;
      if (node >= 0) blockedNodes.add(node);
    }
    const blocked = graph.nodes.filter((n) => blockedNodes.has(n.index)).map((n) => n.name);
    graph.nodes.forEach((n, i) => {
      latency[n.name] = mapping.role[i] === "kernel" ? median(perNode[i]) : 0;
      if (mapping.role[i] === "fused") fusedInto[n.name] = graph.nodes[mapping.anchorOf[i]].name;
      if (mapping.role[i] === "removed") removed.push(n.name);
    });

    // 2. Standalone times of fused nodes, from the graph run without optimization (one kernel per node).
    const standalone: Record<string, number> = {};
    if (Object.keys(fusedInto).length > 0) {
      const plain = await createSession(proto, {
        threads,
        profilePrefix: join(dir, "plain"),
        optimization: "disabled",
        source,
      });
      const w = Math.min(warmup, 2);
      for (let i = 0; i < w + unfusedRuns; i++) {
        await plain.run(feeds);
        progress("unfused", i + 1, w + unfusedRuns);
      }
      plain.endProfiling();
      await plain.release();
      const plainRuns = takeTrace(join(dir, "plain")).runs.slice(w);
      for (const name of Object.keys(fusedInto)) {
        standalone[name] = median(plainRuns.map((r) => r.kernels.get(name) ?? 0));
      }
    }

    // 3. What a stage run costs beyond its kernels on this machine (call, output copy), and the scale taking
    // per-node medians to the whole run's wall time.
    const overhead = await measureStageOverhead({
      threads,
      dir,
      onProgress: (done, total) => progress("overhead", done, total),
    });
    const bytesIn = graph.inputs.reduce((s, v) => s + typeBytes(analyzed.types.get(v.name)), 0);
    const bytesOut = graph.outputs.reduce((s, v) => s + typeBytes(analyzed.types.get(v.name)), 0);
    const sum = Object.values(latency).reduce((s, v) => s + v, 0);
    const kernelWall =
      median(wall) - (overhead.fixed + overhead.perByteIn * bytesIn + overhead.perByteOut * bytesOut);
    // On a quiet machine the ratio stays within a few percent of 1; a larger one means the whole-run timing
    // caught a burst of load from other processes, which should not be carried into every prediction.
    const scale =
      sum > 0 && kernelWall > 0 ? Math.min(MAX_SCALE, Math.max(1 / MAX_SCALE, kernelWall / sum)) : 1;

    return {
      format: "cleave-profile",
      version: 1,
      model: modelIdentity(graph),
      device: deviceInfo(threads),
      inputShapes: Object.fromEntries(graph.inputs.map((v) => [v.name, analyzed.types.get(v.name)!.shape])),
      warmup,
      runs,
      latency,
      fusedInto,
      removed,
      blocked,
      standalone,
      unattributed: median(unattributed),
      kernelTotal: median(kernelTotal),
      wholeRun: median(wall),
      scale,
      overhead,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BLOCKED_DOMAIN = "com.microsoft.nchwc";

/** Bound of Profile.scale (and of its inverse): quiet runs here gave 0.94-1.08 over the zoo CNNs. */
const MAX_SCALE = 1.15;

function readOptimized(path: string): OptimizedNode[] {
  const m = loadModel(path);
  return (m.graph?.node ?? []).map((n) => ({
    name: n.name,
    op: n.opType,
    domain: n.domain,
    inputs: n.input,
    outputs: n.output,
  }));
}

/** The machine this process runs on, for a profile's `device` field. */
export function deviceInfo(threads: number): ProfileDevice {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? "unknown",
    cpus: c.length,
    threads,
    platform: platform(),
    arch: arch(),
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
  };
}

/**
 * A copy of `profile` with every time (node latencies, stand-alone times, totals, whole run, stage overhead)
 * multiplied by `factor` (> 0), e.g. threads / cpuShare for a device emulated here under a CPU quota. The
 * ratio `scale` is kept; `device.cpu` records the factor and `why`.
 */
export function scaleProfile(profile: Profile, factor: number, why: string): Profile {
  if (!(factor > 0 && Number.isFinite(factor)))
    throw new ArgumentError(`profile scale factor must be a positive number, got ${factor}`);
  const times = (r: Record<string, number>) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v * factor]));
  const o = profile.overhead;
  return {
    ...profile,
    device: { ...profile.device, cpu: `${profile.device.cpu} (times x${+factor.toFixed(4)}: ${why})` },
    latency: times(profile.latency),
    standalone: times(profile.standalone),
    unattributed: profile.unattributed * factor,
    kernelTotal: profile.kernelTotal * factor,
    wholeRun: profile.wholeRun * factor,
    overhead: {
      fixed: o.fixed * factor,
      perByteIn: o.perByteIn * factor,
      perByteOut: o.perByteOut * factor,
      perByteLayout: o.perByteLayout * factor,
    },
  };
}

/** Writes a profile as JSON (atomically, see {@link writeOutputFile}). */
export function saveProfile(profile: Profile, path: string): void {
  writeOutputFile(path, `${JSON.stringify(profile, null, 2)}\n`);
}

const SECONDS = z.number().nonnegative().finite();
const PROFILE = z.object({
  format: z.literal("cleave-profile"),
  version: z.literal(1),
  model: z.object({
    file: z.string(),
    nodes: z.int().nonnegative(),
    hash: z.string().regex(/^[0-9a-f]{64}$/),
  }),
  device: z.object({
    cpu: z.string(),
    cpus: z.int().positive(),
    threads: z.int().positive(),
    platform: z.string(),
    arch: z.string(),
    onnxruntime: z.string(),
  }),
  inputShapes: z.record(z.string(), z.array(z.int().nonnegative())),
  warmup: z.int().nonnegative(),
  runs: z.int().positive(),
  latency: z.record(z.string(), SECONDS),
  fusedInto: z.record(z.string(), z.string()),
  removed: z.array(z.string()),
  blocked: z.array(z.string()),
  standalone: z.record(z.string(), SECONDS),
  unattributed: SECONDS,
  kernelTotal: SECONDS,
  wholeRun: SECONDS,
  scale: z.number().positive().finite(),
  overhead: z.object({
    fixed: SECONDS,
    perByteIn: SECONDS,
    perByteOut: SECONDS,
    perByteLayout: SECONDS,
  }),
});

/** Reads and validates a profile file; errors name the file and the field. */
export function loadProfile(path: string): Profile {
  if (!existsSync(path))
    throw new ArgumentError(`${path}: no such profile file`, { file: path }, "BAD_CONFIG");
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ArgumentError(
      `${path}: not a JSON profile (${errorMessage(err)})`,
      { file: path },
      "BAD_CONFIG",
    );
  }
  const r = PROFILE.safeParse(obj);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    throw new ArgumentError(
      `${path}: not a cleave profile (${field.replace(/^\./, "") || "top level"}: ${issue.message})`,
      { file: path, field },
      "BAD_CONFIG",
    );
  }
  return r.data as Profile;
}

/**
 * Checks that a profile was measured on this model (same node names and operators) and at the same input
 * shapes; throws an ArgumentError naming the profile file otherwise.
 */
export function checkProfile(
  profile: Profile,
  graph: Graph,
  file = "profile",
  inputShapes?: Record<string, number[]>,
): void {
  const id = modelIdentity(graph);
  if (profile.model.hash !== id.hash) {
    throw new ArgumentError(
      `${file}: profile is for model '${profile.model.file}' (${profile.model.nodes} nodes), not '${id.file}' (${id.nodes} nodes); profile this model with cleave profile`,
      { file, field: "model" },
      "BAD_CONFIG",
    );
  }
  if (!inputShapes) return;
  for (const [name, shape] of Object.entries(inputShapes)) {
    const p = profile.inputShapes[name];
    if (p && p.join("x") !== shape.join("x")) {
      throw new ArgumentError(
        `${file}: profile was measured with input '${name}' of shape ${p.join("x")}, not ${shape.join("x")}`,
        { file, field: `inputShapes.${name}` },
        "BAD_CONFIG",
      );
    }
  }
}
