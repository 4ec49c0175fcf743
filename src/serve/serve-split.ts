import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster, Device } from "../cluster/types.js";
import { ArgumentError, CleaveError } from "../errors.js";
import { buildStages } from "../export/stage.js";
import { writeSplit } from "../export/write.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { StageAssignment } from "../partition/assign.js";
import { deploy } from "../runtime/deploy.js";
import { type LocalCluster, startLocalWorkers } from "../runtime/local-cluster.js";
import type { Pipeline, Tensors, WorkerAddress } from "../runtime/pipeline.js";
import type { MetricsSource } from "./metrics.js";
import type { ServedModel } from "./server.js";

/** Options of {@link deployForServing}. */
export interface ServeSplitOptions {
  /** Running workers by device name; a device not listed needs `cpus` and gets a local worker. */
  workers?: readonly WorkerAddress[];
  /** Token of the given workers. */
  token?: string;
  /** Requests in the pipeline at once (default 2 per stage). */
  inFlight?: number;
  /** Path of the source model, recorded in the manifest. */
  modelPath?: string;
  /** The plan's predicted throughput, inferences/s, shown beside the measured one in the metrics. */
  predictedThroughput?: number;
  /** Called with a short description of each step. */
  onStep?: (what: string) => void;
}

/** A split deployed for serving: the model the server answers for, and what its metrics read. */
export interface ServedSplit extends ServedModel, MetricsSource {
  readonly pipeline: Pipeline;
  /** Device of each stage. */
  readonly devices: readonly string[];
  /** Requests in the pipeline at once. */
  readonly inFlight: number;
  /** Undeploys, stops the local workers it started and removes the stage files. */
  close(): Promise<void>;
}

/**
 * Deploys a split of `model` on the devices of `cluster` for serving, under the name `name`: writes the stage
 * models, starts a pinned local worker for each emulated device (one with `cpus`) without a running worker,
 * and deploys. A worker fault (a connection lost) makes it not ready; the caller closes it.
 */
export async function deployForServing(
  model: AnalyzedModel,
  assignment: StageAssignment,
  devices: readonly string[],
  cluster: Cluster,
  name: string,
  opts: ServeSplitOptions = {},
): Promise<ServedSplit> {
  if (devices.length !== assignment.count)
    throw new ArgumentError(`${assignment.count} stages but ${devices.length} devices given`);
  const byName = new Map(cluster.devices.map((d) => [d.name, d]));
  const used: Device[] = devices.map((n) => {
    const d = byName.get(n);
    if (!d) throw new ArgumentError(`device '${n}' is not in cluster ${cluster.name}`, { device: n });
    return d;
  });
  const given = new Map((opts.workers ?? []).map((w) => [w.name, w]));
  const toStart = [...new Map(used.filter((d) => !given.has(d.name)).map((d) => [d.name, d])).values()];
  for (const d of toStart)
    if (d.cpus === undefined)
      throw new ArgumentError(
        `device '${d.name}' has no running worker: give --workers ${d.name}=host:port or its endpoint: in the cluster file, or cpus: [...] to emulate it here`,
        { device: d.name },
      );
  const stages = buildStages(model, assignment);
  const dir = mkdtempSync(join(tmpdir(), "cleave-serve-"));
  let local: LocalCluster | undefined;
  let pipeline: Pipeline | undefined;
  const release = async () => {
    await pipeline?.close();
    await local?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const split = join(dir, "split");
    const manifest = writeSplit(model, stages, split, {
      modelPath: opts.modelPath ?? model.graph.source,
      devices,
    });
    if (toStart.length > 0) {
      opts.onStep?.(`starting ${toStart.length} local worker(s)`);
      local = await startLocalWorkers(
        toStart.map((d) => ({ name: d.name, cpus: d.cpus, threads: d.threads ?? d.cpus?.length ?? 1 })),
        { token: opts.token },
      );
    }
    const inFlight = opts.inFlight ?? 2 * stages.length;
    opts.onStep?.(`deploying ${stages.length} stage(s)`);
    const p = await deploy({ manifest, dir: split }, [...given.values(), ...(local?.workers ?? [])], {
      token: local?.token ?? opts.token,
      maxInFlight: inFlight,
    });
    pipeline = p;
    let lost = false;
    let closed = false;
    return {
      name,
      signature: { inputs: p.manifest.inputs, outputs: p.manifest.outputs },
      pipeline: p,
      devices: [...devices],
      inFlight,
      predictedThroughput: opts.predictedThroughput,
      ready: () => !lost && !closed,
      async infer(feeds: Tensors, o: { signal: AbortSignal }) {
        try {
          return await p.infer(feeds, { signal: o.signal });
        } catch (err) {
          // A worker fault (its connection lost) breaks the pipeline for every later request.
          if (err instanceof CleaveError && err.code === "WORKER") lost = true;
          throw err;
        }
      },
      pipelineStats: () => p.stats(),
      workerStats: () => p.workerStats(),
      close: async () => {
        closed = true;
        await release();
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
