import { RuntimeFault } from "../errors.js";
import type { RecoveryEvent } from "../runtime/control/service.js";
import type { Tensors } from "../runtime/coordinator/pipeline.js";
import type { DeployedSplit, SplitMeasurement } from "../runtime/coordinator/run-split.js";

/** Options of {@link measureFaultRecovery}. */
export interface FaultRecoveryOptions {
  /** Device whose worker process is hit (it must be a local worker: its pid is signalled). */
  victim: string;
  /** `kill`: SIGKILL (the process dies); `stop`: SIGSTOP (it hangs), with SIGCONT at the end. Default kill. */
  fault?: "kill" | "stop";
  /** Requests measured before the fault and after the recovery, each (default 100). */
  requests?: number;
  /** Requests streamed through the fault (default 120); the fault comes after `faultAfter` of them (default 30). */
  through?: number;
  faultAfter?: number;
  /** Requests in flight at once (default: the deployment's). */
  inFlight?: number;
  /**
   * Requests run after the recovery before the round after is measured, for at least this long, ms (default
   * 1000): a stage just loaded on a worker runs slower for its first ~80 requests, as deploySplit's warm-up allows.
   */
  warmupMs?: number;
  /** Feeds of every request. */
  feeds: Tensors;
}

/** What {@link measureFaultRecovery} measured. Times in ms. */
export interface FaultRecoveryResult {
  victim: string;
  fault: "kill" | "stop";
  /** The controller's recovery event (detectedMs and restoredMs counted from the last frame seen). */
  recovery?: RecoveryEvent;
  /** From the signal to the first request completed on the deployment that replaced the lost one, ms. */
  firstAnswerAfterFaultMs: number;
  /** Requests streamed through the fault, answered with outputs, failed, and not answered at all (lost). */
  streamed: number;
  answered: number;
  failed: number;
  lost: number;
  /** Requests the controller ran again after the fault. */
  replayed: number;
  /** A round before the fault, and one after the recovery and a warm-up. */
  before: SplitMeasurement;
  after: SplitMeasurement;
  /** Devices of each stage after the recovery. */
  devicesAfter: string[];
}

/**
 * Measures recovery from one fault on a deployed split (from deploySplit, recovery on): a round before, then
 * `through` requests streamed while the victim's worker process is killed (or stopped) after `faultAfter` of
 * them, then a round on the deployment that replaced it. Returns the timings, the counts (lost must be 0) and
 * both rounds. The split is left deployed on the devices left; the caller closes it.
 */
export async function measureFaultRecovery(
  split: DeployedSplit,
  opts: FaultRecoveryOptions,
): Promise<FaultRecoveryResult> {
  const c = split.controller;
  const fault = opts.fault ?? "kill";
  const pid = c.pipeline.stats().workers.find((w) => w.name === opts.victim)?.pid;
  if (pid === undefined || pid <= 0)
    throw new RuntimeFault("WORKER", `device ${opts.victim} has no worker process in this deployment`, {
      device: opts.victim,
    });
  const requests = opts.requests ?? 100;
  const before = await split.measure(requests, opts.inFlight);
  const through = opts.through ?? 120;
  const faultAfter = opts.faultAfter ?? 30;
  const recoveriesBefore = c.recoveries.length;
  const replayedBefore = c.stats().requestsReplayed;
  let tFault = Number.NaN;
  let epochAtFault = Number.POSITIVE_INFINITY;
  let firstAfter = Number.NaN;
  let answered = 0;
  let failed = 0;
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < through) {
      next++;
      try {
        await c.infer(opts.feeds);
        answered++;
        if (c.currentEpoch > epochAtFault && Number.isNaN(firstAfter))
          firstAfter = performance.now() - tFault;
      } catch {
        failed++;
      }
      if (++done === faultAfter) {
        epochAtFault = c.currentEpoch;
        tFault = performance.now();
        process.kill(pid, fault === "kill" ? "SIGKILL" : "SIGSTOP");
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.inFlight ?? c.pipeline.maxInFlight }, lane));
    const t0 = performance.now();
    while (performance.now() - t0 < (opts.warmupMs ?? 1000))
      await c.runMany({ count: 10, feeds: () => opts.feeds }, { inFlight: opts.inFlight });
    const after = await split.measure(requests, opts.inFlight);
    return {
      victim: opts.victim,
      fault,
      recovery: c.recoveries[recoveriesBefore],
      firstAnswerAfterFaultMs: firstAfter,
      streamed: through,
      answered,
      failed,
      lost: through - answered - failed,
      replayed: c.stats().requestsReplayed - replayedBefore,
      before,
      after,
      devicesAfter: c.deployed.manifest.stages.map((s) => s.device ?? "?"),
    };
  } finally {
    if (fault === "stop") process.kill(pid, "SIGCONT");
  }
}
