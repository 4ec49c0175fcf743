import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster } from "../cluster/types.js";
import { ArgumentError, errorMessage } from "../errors.js";
import { deployedWeights, encodedSplit } from "../export/encode-stages.js";
import { writeSplit } from "../export/write.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { TensorEncoding } from "../onnx/encoding.js";
import type { StageAssignment } from "../partition/assign.js";
import { reassignStages } from "../runtime/control/reassign.js";
import {
  type Controller,
  type RecoveryEvent,
  type ReplanEvent,
  startController,
} from "../runtime/control/service.js";
import { type LocalCluster, startLocalWorkers } from "../runtime/coordinator/local-cluster.js";
import { workersFor } from "../runtime/coordinator/run-split.js";
import type { Pipeline, Tensors, WorkerAddress } from "../runtime/coordinator/pipeline.js";
import { logger } from "../runtime/log.js";
import type { MetricsSource } from "./metrics.js";
import type { ServedModel } from "./server.js";
import type { TlsConfig } from "../runtime/transport/transport.js";

const log = logger("serve:deploy");

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
  /**
   * Relative speed of each replica of a replicated stage (e.g. the plan's shares), by the stage indices of
   * `assignment` (an encoder stage put first does not shift them); see DeployOptions.
   */
  replicaWeights?: (stage: number, device: string) => number | undefined;
  /**
   * Cut tensors sent encoded (a plan's `encodings.tensors`): the stage models encode and decode them (see
   * `encodeStages`); a graph input sent encoded adds a stage on the cluster's input device that only encodes.
   */
  encodings?: readonly TensorEncoding[];
  /** TLS to the given workers (started with the same `--tls`); every device then needs a given worker. */
  tls?: TlsConfig;
  /** Called with a short description of each step. */
  onStep?: (what: string) => void;
  /** Failure detector, ms (default 1000; see Pipeline.startHeartbeat). */
  heartbeatMs?: number;
  /** Called with each recovery from a lost device, and each re-plan, as they happen. */
  onRecovery?: (e: RecoveryEvent) => void;
  onReplan?: (e: ReplanEvent) => void;
}

/** A split deployed for serving: the model the server answers for, and what its metrics read. */
export interface ServedSplit extends ServedModel, MetricsSource {
  readonly pipeline: Pipeline;
  /** Devices of each deployed stage: one, or a replica group (the encoder stage's first when there is one). */
  readonly devices: readonly (readonly string[])[];
  /** True when stage 0 was added on the input device to encode graph inputs (`encodeStages`). */
  readonly encoderStage: boolean;
  /** Requests in the pipeline at once. */
  readonly inFlight: number;
  /** The control loop that owns the deployment (its recoveries and re-plans). */
  readonly controller: Controller;
  /** Recoveries from worker faults so far (deployments made over the devices left after a loss). */
  recoveries(): number;
  /** Undeploys, stops the local workers it started and removes the stage files. */
  close(): Promise<void>;
}

/**
 * Deploys a split of `model` on the devices of `cluster` for serving, under the name `name`: writes the stage
 * models, starts a pinned local worker for each emulated device (one with `cpus`) without a running worker,
 * and deploys under a {@link Controller}. A lost worker (connection closed, silent past the heartbeat) makes it
 * not ready while the controller moves its stages to the devices left and runs the requests that met the
 * fault again there; a local worker that was lost is killed and started again at its endpoint, and once it
 * (or a given worker, restarted by whoever runs it) answers, the first split is deployed again (from the
 * workers' stage caches). Encoded cut tensors (`encodings`) stay encoded through every recovery: the stage
 * files are the same, only their devices change. The caller closes it.
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
  const encoded = encodedSplit(model, assignment, stageDevices, opts.encodings ?? [], {
    inputDevice: cluster.inputDevice,
  });
  const stages = encoded.stages;
  const devices = encoded.devices;
  const { used, given, toStart } = workersFor(cluster, devices.flat(), opts.workers, opts.tls !== undefined);
  const dir = mkdtempSync(join(tmpdir(), "cleave-serve-"));
  let local: LocalCluster | undefined;
  let controller: Controller | undefined;
  const restarts = new Set<Promise<void>>();
  const release = async () => {
    await controller?.close();
    // A worker being started again is stopped with the rest, not left behind.
    await Promise.allSettled([...restarts]);
    await local?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const split = join(dir, "split");
    const manifest = writeSplit(model, stages, split, {
      modelPath: opts.modelPath ?? model.graph.source,
      devices,
      encodings: opts.encodings,
    });
    if (toStart.length > 0) {
      opts.onStep?.(`starting ${toStart.length} local worker(s)`);
      local = await startLocalWorkers(toStart, { token: opts.token });
    }
    const inFlight = opts.inFlight ?? 2 * Math.max(stages.length, used.length);
    opts.onStep?.(`deploying ${stages.length} stage(s)`);
    const c = await startController(
      { manifest, dir: split },
      [...given.values(), ...(local?.workers ?? [])],
      {
        deploy: {
          token: local?.token ?? opts.token,
          maxInFlight: inFlight,
          // The caller's stage indices are the plan's; an encoder stage put first shifts the deployed ones by one.
          replicaWeights: deployedWeights(opts.replicaWeights, encoded.encoderStage),
          ...(opts.tls ? { tls: opts.tls } : {}),
        },
        ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
        replan: async (alive) => ({ manifest: reassignStages(manifest, alive), dir: split }),
      },
    );
    controller = c;
    let closed = false;
    // A local worker that was lost is ours to start again (a given one is someone else's, e.g. its
    // StatefulSet's); the controller finds it at its endpoint and moves back to the first split.
    const localNames = new Set(toStart.map((d) => d.name));
    c.on("lost", (e) => {
      if (closed || !local || !localNames.has(e.device)) return;
      const r = local.restart(e.device).then(
        () => log(`restarted local worker ${e.device}`),
        (err) => log(`cannot restart local worker ${e.device}: ${errorMessage(err)}`),
      );
      restarts.add(r);
      void r.finally(() => restarts.delete(r));
    });
    if (opts.onRecovery) c.on("recovery", opts.onRecovery);
    if (opts.onReplan) c.on("replan", opts.onReplan);
    const current = () => c.pipeline;
    return {
      name,
      signature: { inputs: manifest.inputs, outputs: manifest.outputs },
      get pipeline() {
        return current();
      },
      devices,
      encoderStage: encoded.encoderStage,
      inFlight,
      predictedThroughput: opts.predictedThroughput,
      controller: c,
      ready: () => c.ready && !closed,
      recoveries: () => c.recoveries.length,
      infer(feeds: Tensors, o: { signal: AbortSignal }) {
        return c.infer(feeds, { signal: o.signal });
      },
      pipelineStats: () => current().stats(),
      workerStats: () => current().workerStats(),
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
