import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster, Device } from "../cluster/types.js";
import { randomFeeds } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import type { StageAssignment } from "../export/assign.js";
import { buildStages } from "../export/stage.js";
import { writeSplit } from "../export/write.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { createSession, type ort } from "../onnx/ort.js";
import { deploy } from "./deploy.js";
import { type LocalCluster, startLocalWorkers } from "./local-cluster.js";
import type { RunReport, Tensors, WorkerAddress } from "./pipeline.js";

/** Options of {@link runSplit}. */
export interface RunSplitOptions {
  /** Measured requests (default 200). */
  requests?: number;
  /** Requests run first and not measured (default: 2 per stage, at least 4). */
  warmup?: number;
  /** Requests in flight at once (default 2 per stage). */
  inFlight?: number;
  /** Workers already running, by device name; devices not listed with `cpus` get a local worker. */
  workers?: readonly WorkerAddress[];
  /** Token of the given workers. */
  token?: string;
  /**
   * User-space one-way delay per link, ms, by sender and receiver name (device names, and "coordinator"),
   * passed to deploy(); the emulated testbed's link latencies.
   */
  linkDelayMs?: (from: string, to: string) => number;
  /** Path of the source model, recorded in the manifest. */
  modelPath?: string;
  /** Deadline of each request, ms (default 30000). */
  deadlineMs?: number;
  /** The inputs to send (default: seeded random inputs of the model's input types). */
  feeds?: Tensors;
  /** Check the first request's outputs against the whole model in this process (default true). */
  verify?: boolean;
  /** Called with a short description of each step (deploying, warming up, measuring). */
  onStep?: (what: string) => void;
}

/** What {@link runSplit} measured. */
export interface RunSplitResult {
  /** Device of each stage. */
  devices: string[];
  report: RunReport;
  /**
   * Largest difference between the pipeline's outputs for the first request and the whole model run in one
   * onnxruntime session on the same inputs, relative to the largest output magnitude (NaN with verify off).
   */
  maxRelativeDiff: number;
  /** Time each worker spent in onnxruntime per request, ms, by device (from the workers' own counters). */
  stageBusyMs: Record<string, number>;
  /** Bytes the coordinator sent and received per request. */
  bytesPerRequest: number;
}

/**
 * Runs a split of `model` on the devices of `cluster` as a pipeline and measures it: writes the stage models,
 * starts a pinned local worker for each emulated device (one with `cpus`) unless a running worker is given,
 * deploys, warms up, streams `requests` requests with `inFlight` in flight, checks the first request's
 * outputs against the whole model, and stops every worker it started.
 */
export async function runSplit(
  model: AnalyzedModel,
  assignment: StageAssignment,
  devices: readonly string[],
  cluster: Cluster,
  opts: RunSplitOptions = {},
): Promise<RunSplitResult> {
  if (devices.length !== assignment.count) {
    throw new ArgumentError(`${assignment.count} stages but ${devices.length} devices given`);
  }
  const byName = new Map(cluster.devices.map((d) => [d.name, d]));
  const used: Device[] = devices.map((name) => {
    const d = byName.get(name);
    if (!d) throw new ArgumentError(`device '${name}' is not in cluster ${cluster.name}`, { device: name });
    return d;
  });
  const given = new Map((opts.workers ?? []).map((w) => [w.name, w]));
  const toStart = used.filter((d) => !given.has(d.name));
  for (const d of toStart) {
    if (d.cpus === undefined) {
      throw new ArgumentError(
        `device '${d.name}' has no running worker: give --workers ${d.name}=host:port, or cpus: [...] to emulate it here`,
        { device: d.name },
      );
    }
  }
  const stages = buildStages(model, assignment);
  const dir = mkdtempSync(join(tmpdir(), "cleave-run-"));
  let local: LocalCluster | undefined;
  try {
    const split = join(dir, "split");
    const manifest = writeSplit(model, stages, split, {
      modelPath: opts.modelPath ?? model.graph.source,
      devices,
    });
    const unique = [...new Map(toStart.map((d) => [d.name, d])).values()];
    opts.onStep?.(`starting ${unique.length} local worker(s)`);
    local =
      unique.length > 0
        ? await startLocalWorkers(
            unique.map((d) => ({ name: d.name, cpus: d.cpus, threads: d.threads ?? d.cpus?.length ?? 1 })),
            { token: opts.token },
          )
        : undefined;
    const workers = [...given.values(), ...(local?.workers ?? [])];
    opts.onStep?.(`deploying ${stages.length} stage(s)`);
    const pipeline = await deploy({ manifest, dir: split }, workers, {
      token: local?.token ?? opts.token,
      maxInFlight: opts.inFlight ?? 2 * stages.length,
      timeoutMs: opts.deadlineMs ?? 30000,
      linkDelayMs: opts.linkDelayMs,
    });
    try {
      const feeds = opts.feeds ?? randomFeeds(model);
      const first = await pipeline.infer(feeds);
      const maxRelativeDiff =
        opts.verify === false ? Number.NaN : await compareWithWhole(model, feeds, first);
      const warmup = opts.warmup ?? Math.max(4, 2 * stages.length);
      opts.onStep?.(`warming up (${warmup} requests)`);
      await pipeline.runMany(
        { count: warmup, feeds: () => feeds },
        { inFlight: opts.inFlight ?? 2 * stages.length },
      );
      const before = await pipeline.workerStats();
      const sentBefore = pipeline.stats();
      const requests = opts.requests ?? 200;
      opts.onStep?.(`measuring (${requests} requests)`);
      const report = await pipeline.runMany(
        { count: requests, feeds: () => feeds },
        { inFlight: opts.inFlight ?? 2 * stages.length, deadlineMs: opts.deadlineMs },
      );
      const after = await pipeline.workerStats();
      const sentAfter = pipeline.stats();
      const busy = (replies: typeof after, worker: string) =>
        (replies.find((r) => r.worker === worker)?.stages ?? []).reduce((s, st) => s + st.computeMs, 0);
      const stageBusyMs: Record<string, number> = {};
      for (const a of after) {
        stageBusyMs[a.worker] =
          (busy(after, a.worker) - busy(before, a.worker)) / Math.max(1, report.completed);
      }
      const bytesPerRequest =
        (sentAfter.bytesSent + sentAfter.bytesReceived - sentBefore.bytesSent - sentBefore.bytesReceived) /
        Math.max(1, report.completed);
      return { devices: [...devices], report, maxRelativeDiff, stageBusyMs, bytesPerRequest };
    } finally {
      await pipeline.close();
    }
  } finally {
    await local?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function compareWithWhole(model: AnalyzedModel, feeds: Tensors, got: Tensors): Promise<number> {
  const session = await createSession(model.graph.model);
  try {
    const want = await session.run(feeds);
    let diff = 0;
    let scale = 0;
    for (const name of Object.keys(want)) {
      const w = want[name] as ort.Tensor;
      const g = got[name];
      if (!g || w.type !== "float32") continue;
      const a = w.data as Float32Array;
      const b = g.data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(a[i]));
      }
    }
    return scale > 0 ? diff / scale : diff;
  } finally {
    await session.release();
  }
}
