import { errorMessage } from "../../errors.js";
import { logger } from "../log.js";
import {
  type AdaptDecision,
  type AdaptPolicy,
  type AdaptSample,
  type AdaptState,
  checkAdaptPolicy,
  DEFAULT_ADAPT_POLICY,
  decideAdapt,
  restartAdaptState,
} from "./adapt-policy.js";
import { type EstimateSnapshot, OnlineEstimates } from "./estimates.js";
import type { Controller, Deployable, ReplanEvent } from "./service.js";

const log = logger("runtime:adapt");

/**
 * What the layer that plans says about the running split under the current estimates: its predicted
 * throughput, the best plan's, and what moving to it costs. The runtime never plans itself (it does not import
 * partition/); the caller builds this from its planner and cost model.
 */
export interface AdaptCandidate extends Omit<AdaptSample, "atMs"> {
  /** Exports the best plan's stages for a switch. */
  build(): Promise<Deployable>;
  /** One line naming what changed (e.g. `core0 1.9x slower`), used as the replan's reason. */
  why: string;
  /** The encodings of the running and the best split, when re-planning under a fidelity budget. */
  encodings?: { from: string; to: string };
}

/** What runs when an evaluation is asked for. */
export interface AdaptContext {
  /** The deployment serving now (after a recovery, not the one adaptation started with). */
  deployed: Deployable;
  /** Devices lost and not back: a proposal must not use them. */
  lost: readonly string[];
}

/** Options of {@link startAdaptation}. */
export interface AdaptOptions {
  /** Prices the running split and the best one under `estimates`; undefined when it cannot say yet. */
  evaluate(
    estimates: EstimateSnapshot,
    now: AdaptContext,
  ): Promise<AdaptCandidate | undefined> | AdaptCandidate | undefined;
  policy?: Partial<AdaptPolicy>;
  /** Time between observations, ms (default 500). */
  intervalMs?: number;
  /** Windows observed on a deployment before its estimates are used (default 3). */
  warmWindows?: number;
  /** Called with every decision (for logs and tests). */
  onDecision?: (d: AdaptDecision) => void;
}

/** A running adaptation loop. */
export interface Adaptation {
  /** Re-plans it made (also the controller's `replan` events). */
  readonly switches: ReplanEvent[];
  /** Stops the loop (a switch in progress finishes first). */
  stop(): Promise<void>;
}

/**
 * Live re-partitioning: every `intervalMs` it reads the workers' counters through the controller, updates the
 * smoothed estimates, asks `evaluate` for the running and the best plan under them, and feeds the decision
 * ({@link decideAdapt}); on `switch` it asks the controller to cut over between requests (`switchTo`: no request
 * lost or answered twice). Estimates start again on every new deployment (a switch, a recovery).
 */
export function startAdaptation(controller: Controller, opts: AdaptOptions): Adaptation {
  const policy = checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, ...opts.policy });
  const intervalMs = opts.intervalMs ?? 500;
  const warm = opts.warmWindows ?? 3;
  const est = new OnlineEstimates();
  const switches: ReplanEvent[] = [];
  let state: AdaptState = {};
  let epoch = controller.currentEpoch;
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();
  const tick = async () => {
    if (stopped || !controller.ready) return;
    if (controller.currentEpoch !== epoch) {
      epoch = controller.currentEpoch;
      est.reset();
      state = restartAdaptState(state);
    }
    const stats = await controller.workerStats(Math.max(200, intervalMs)).catch(() => undefined);
    if (!stats || stopped || controller.currentEpoch !== epoch) return;
    est.observe(stats, controller.pipeline.stats().completed, performance.now());
    const snap = est.snapshot();
    if (snap.windows < warm) return;
    const c = await opts.evaluate(snap, { deployed: controller.deployed, lost: controller.lostDevices });
    if (!c) log(`no estimate yet (${snap.windows} windows, ${snap.stageMs.size} stages timed)`);
    if (!c || stopped) return;
    const d = decideAdapt(state, { ...c, atMs: performance.now() }, policy);
    state = d.state;
    log(`${d.action}: ${d.reason} (${c.why})`);
    opts.onDecision?.(d);
    if (d.action !== "switch") return;
    log(`switching: ${d.reason} (${c.why})`);
    const next = await c.build();
    if (stopped) return;
    const e = await controller.switchTo(next, `${c.why}; ${d.reason}`, {
      fromThroughput: c.running,
      toThroughput: c.best,
      ...(c.encodings ? { encodings: c.encodings } : {}),
    });
    switches.push(e);
    epoch = controller.currentEpoch;
    est.reset();
    state = restartAdaptState(state);
  };
  const timer = setInterval(() => {
    busy = busy.then(tick).catch((err) => log(`adaptation step failed: ${errorMessage(err)}`));
  }, intervalMs);
  timer.unref();
  return {
    switches,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await busy;
    },
  };
}
