import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster } from "../cluster/types.js";
import { ArgumentError, errorMessage, RuntimeFault } from "../errors.js";
import { buildStages } from "../export/stage.js";
import { writeSplit } from "../export/write.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { StageAssignment } from "../partition/assign.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import { deploy } from "../runtime/coordinator/deploy.js";
import { type LocalCluster, startLocalWorkers } from "../runtime/coordinator/local-cluster.js";
import { workersFor } from "../runtime/coordinator/run-split.js";
import type { Pipeline, Tensors, WorkerAddress } from "../runtime/coordinator/pipeline.js";
import { logger } from "../runtime/log.js";
import type { MetricsSource } from "./metrics.js";
import type { ServedModel } from "./server.js";
import type { TlsConfig } from "../runtime/transport/transport.js";

const log = logger("serve:deploy");

/** Resolves when `p` does; rejects when `signal` aborts first. */
function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

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
  /** Relative speed of each replica of a replicated stage (e.g. the plan's shares); see DeployOptions. */
  replicaWeights?: (stage: number, device: string) => number | undefined;
  /** TLS to the given workers (started with the same `--tls`); every device then needs a given worker. */
  tls?: TlsConfig;
  /** Called with a short description of each step. */
  onStep?: (what: string) => void;
}

/** A split deployed for serving: the model the server answers for, and what its metrics read. */
export interface ServedSplit extends ServedModel, MetricsSource {
  readonly pipeline: Pipeline;
  /** Devices of each stage: one, or a replica group. */
  readonly devices: readonly (readonly string[])[];
  /** Requests in the pipeline at once. */
  readonly inFlight: number;
  /** Recoveries from worker faults so far. */
  recoveries(): number;
  /** Undeploys, stops the local workers it started and removes the stage files. */
  close(): Promise<void>;
}

/**
 * Deploys a split of `model` on the devices of `cluster` for serving, under the name `name`: writes the stage
 * models, starts a pinned local worker for each emulated device (one with `cpus`) without a running worker,
 * and deploys. A worker fault (a connection lost) makes it not ready while it recovers: it restarts its local
 * workers and deploys again, with backoff, and the requests that met the fault run once more. The caller
 * closes it.
 */
export async function deployForServing(
  model: AnalyzedModel,
  assignment: StageAssignment,
  stageDevices: readonly (string | readonly string[])[],
  cluster: Cluster,
  name: string,
  opts: ServeSplitOptions = {},
): Promise<ServedSplit> {
  if (stageDevices.length !== assignment.count)
    throw new ArgumentError(`${assignment.count} stages but ${stageDevices.length} devices given`);
  const devices = stageDevices.map((g) => (typeof g === "string" ? [g] : [...g]));
  const { used, given, toStart } = workersFor(cluster, devices.flat(), opts.workers, opts.tls !== undefined);
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
      local = await startLocalWorkers(toStart, { token: opts.token });
    }
    const inFlight = opts.inFlight ?? 2 * Math.max(stages.length, used.length);
    const deployNow = () =>
      deploy({ manifest, dir: split }, [...given.values(), ...(local?.workers ?? [])], {
        token: local?.token ?? opts.token,
        maxInFlight: inFlight,
        replicaWeights: opts.replicaWeights,
        ...(opts.tls ? { tls: opts.tls } : {}),
      });
    opts.onStep?.(`deploying ${stages.length} stage(s)`);
    pipeline = await deployNow();
    let closed = false;
    let recovering: Promise<void> | undefined;
    let recoveries = 0;
    // After a worker fault: undeploy what is left, restart the local workers (a given worker is someone
    // else's to restart, e.g. its StatefulSet's) and deploy again, with backoff, until it works or closes.
    const recover = (): Promise<void> => {
      recovering ??= (async () => {
        for (let attempt = 0; !closed; attempt++) {
          try {
            await pipeline?.close();
            if (local) {
              const token = local.token;
              await local.stop();
              local = undefined;
              local = await startLocalWorkers(toStart, { token });
            }
            pipeline = await deployNow();
            recoveries++;
            log(`recovered after ${attempt + 1} attempt(s)`);
            return;
          } catch (err) {
            log(`recovery attempt ${attempt + 1} failed: ${errorMessage(err)}`);
            await sleep(backoffDelay(attempt, { initialMs: 200, maxMs: 5000 }));
          }
        }
      })().finally(() => {
        recovering = undefined;
      });
      return recovering;
    };
    const current = () => pipeline as Pipeline;
    return {
      name,
      signature: { inputs: manifest.inputs, outputs: manifest.outputs },
      get pipeline() {
        return current();
      },
      devices,
      inFlight,
      predictedThroughput: opts.predictedThroughput,
      ready: () => recovering === undefined && !closed,
      recoveries: () => recoveries,
      async infer(feeds: Tensors, o: { signal: AbortSignal }) {
        // A request that meets a fault runs again (twice at most), after the recovery when a worker was lost,
        // so an admitted request is answered rather than lost. A peer's death can first reach a request as
        // a stage error (the stage before it could not send), and the pipeline learns of the lost
        // connection a moment later, so any run-time fault is retried, and a lost worker starts recovery.
        for (let attempt = 0; ; attempt++) {
          if (recovering) await untilAborted(recovering, o.signal);
          const p = current();
          try {
            return await p.infer(feeds, { signal: o.signal });
          } catch (err) {
            const runtime = err instanceof RuntimeFault;
            if (!runtime || closed || o.signal.aborted || attempt >= 2) throw err;
            if (err.code === "WORKER" && current() === p) void recover();
          }
        }
      },
      pipelineStats: () => current().stats(),
      workerStats: () => current().workerStats(),
      close: async () => {
        closed = true;
        await recovering;
        await release();
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
