/**
 * When to re-partition a running split: a pure function of the estimates over time, so it can be tested
 * with synthetic sequences. Switch when the best plan under the current estimates beats the running plan's
 * predicted throughput by more than `threshold` continuously for `holdMs`, and the requests gained over
 * `horizonMs` outweigh those lost while moving (stage bytes to ship over the link, plus the pause of the cut-over).
 *
 * Robust to noise (a loaded host's estimates swing 2-3x): the gain judged is smoothed (an EWMA over samples)
 * less `confidence` times its mean absolute deviation, so a gain that only shows in noisy samples does not
 * count; for `cooldownMs` after a switch only a gain past `returnThreshold` moves on, to a plan other than the
 * one just left; and the plan just left is taken back only after the cool-down and when its gain passes
 * `returnThreshold` (a move that reverses the last one needs much stronger evidence).
 */

/** Parameters of the decision. */
export interface AdaptPolicy {
  /** Relative gain the best plan must show, in (0, 1) (default 0.15: 15%). */
  threshold: number;
  /** How long the gain must hold without a break before a switch, ms (default 3000). */
  holdMs: number;
  /** Time over which the gain is counted against the cost of moving, ms (default 60000). */
  horizonMs: number;
  /** Weight of the newest sample in the smoothed gain, in (0, 1] (default 0.3; 1: no smoothing). */
  smoothing: number;
  /** Deviations of the gain taken off the smoothed gain before it is compared, >= 0 (default 1). */
  confidence: number;
  /** For this long after a switch only a gain past `returnThreshold` switches, never back, ms (default 15000). */
  cooldownMs: number;
  /** The gain needed to go back to the plan just left, > threshold (default 0.5: 50%). */
  returnThreshold: number;
}

/** The defaults: 15%, 3 s, 60 s; smoothing 0.3, one deviation, 15 s cool-down, 50% to go back. */
export const DEFAULT_ADAPT_POLICY: AdaptPolicy = {
  threshold: 0.15,
  holdMs: 3000,
  horizonMs: 60000,
  smoothing: 0.3,
  confidence: 1,
  cooldownMs: 15000,
  returnThreshold: 0.5,
};

/** One evaluation of the plans under the current estimates. */
export interface AdaptSample {
  /** performance.now() or any monotonic clock, ms. */
  atMs: number;
  /** Predicted throughput of the running plan under the current estimates, requests/s. */
  running: number;
  /** Predicted throughput of the best plan under them, requests/s. */
  best: number;
  /** Stage bytes the switch would ship (0 when the workers hold every stage of the best plan). */
  moveBytes: number;
  /** Bandwidth those bytes travel at, bytes/s. */
  bandwidth: number;
  /** Time requests wait at the cut-over besides the shipping (undeploy, load, first run), ms (default 0). */
  pauseMs?: number;
  /** Identity of the running plan and of the best one (e.g. their cuts and devices), to know a plan just left. */
  runningKey?: string;
  bestKey?: string;
}

/** What the decision remembers between samples. */
export interface AdaptState {
  /** When the judged gain went above the threshold and stayed there, ms (undefined: it is not above). */
  aboveSince?: number;
  /** Smoothed gain and its smoothed absolute deviation (undefined before the first sample). */
  gain?: number;
  deviation?: number;
  /** When the last switch was decided, ms, and the key of the plan it left. */
  switchedAt?: number;
  left?: string;
}

/**
 * The state to keep when a new deployment starts (a switch or a recovery): the estimates start again, so the
 * hold and the smoothed gain do; the cool-down and the plan left stay.
 */
export function restartAdaptState(state: AdaptState): AdaptState {
  return {
    ...(state.switchedAt !== undefined ? { switchedAt: state.switchedAt } : {}),
    ...(state.left !== undefined ? { left: state.left } : {}),
  };
}

/** A decision and why, in one line. */
export interface AdaptDecision {
  action: "stay" | "wait" | "switch";
  reason: string;
  /** The relative gain of the best plan over the running one. */
  gain: number;
  state: AdaptState;
}

/** Checks a policy: a one-line RangeError naming the field when a value is out of range. */
export function checkAdaptPolicy(p: AdaptPolicy): AdaptPolicy {
  if (!(p.threshold > 0 && p.threshold < 1))
    throw new RangeError(`adapt threshold must be in (0, 1), got ${p.threshold}`);
  if (!(p.holdMs >= 0 && Number.isFinite(p.holdMs)))
    throw new RangeError(`adapt hold must be a number of ms >= 0, got ${p.holdMs}`);
  if (!(p.horizonMs > 0 && Number.isFinite(p.horizonMs)))
    throw new RangeError(`adapt horizon must be a positive number of ms, got ${p.horizonMs}`);
  if (!(p.smoothing > 0 && p.smoothing <= 1))
    throw new RangeError(`adapt smoothing must be in (0, 1], got ${p.smoothing}`);
  if (!(p.confidence >= 0 && Number.isFinite(p.confidence)))
    throw new RangeError(`adapt confidence must be a number >= 0, got ${p.confidence}`);
  if (!(p.cooldownMs >= 0 && Number.isFinite(p.cooldownMs)))
    throw new RangeError(`adapt cool-down must be a number of ms >= 0, got ${p.cooldownMs}`);
  if (!(p.returnThreshold >= p.threshold && Number.isFinite(p.returnThreshold)))
    throw new RangeError(
      `adapt return threshold must be at least the threshold (${p.threshold}), got ${p.returnThreshold}`,
    );
  return p;
}

/**
 * Decides for one sample. The gain judged is the smoothed gain less `confidence` deviations (see the policy).
 * `stay`: in the cool-down after a switch, or the judged gain is at most the threshold (the return threshold
 * when the best plan is the one just left; the hold restarts), or it held but does not pay for the move;
 * `wait`: above for less than the hold; `switch`: above for the hold and worth it (the hold restarts, the
 * cool-down starts, and the running plan becomes the one left).
 */
export function decideAdapt(state: AdaptState, s: AdaptSample, policy: AdaptPolicy): AdaptDecision {
  const raw = s.running > 0 ? s.best / s.running - 1 : s.best > 0 ? Number.POSITIVE_INFINITY : 0;
  // An infinite gain (nothing runs) is judged as it is; a finite one is smoothed.
  const a = policy.smoothing;
  const prev = state.gain;
  const gainNow =
    Number.isFinite(raw) && prev !== undefined && Number.isFinite(prev) ? a * raw + (1 - a) * prev : raw;
  const devNow =
    prev !== undefined && Number.isFinite(raw) && Number.isFinite(prev)
      ? a * Math.abs(raw - prev) + (1 - a) * (state.deviation ?? 0)
      : 0;
  const judged = gainNow - policy.confidence * devNow;
  const kept = { ...restartAdaptState(state), gain: gainNow, deviation: devNow };
  const back = s.bestKey !== undefined && s.bestKey === state.left;
  const sinceSwitch = state.switchedAt === undefined ? Number.POSITIVE_INFINITY : s.atMs - state.switchedAt;
  const cooling = sinceSwitch < policy.cooldownMs;
  // In the cool-down only a gain past the return threshold moves on (never back): a switch decided while a step
  // was still reaching the estimates lands on a plan that is soon far from the best (a CPU quota: 65-111% for
  // the whole 15 s), and waiting out the cool-down would give that away.
  const onward = cooling && !back && judged > policy.returnThreshold;
  const needed = back || cooling ? policy.returnThreshold : policy.threshold;
  const shown = `best plan ${pct(judged)} over the running one (${pct(gainNow)} smoothed, ${pct(raw)} now)`;
  if (cooling && !onward)
    return {
      action: "stay",
      reason: `${shown}; cooling down for ${Math.round(policy.cooldownMs - sinceSwitch)} ms after the last switch${back ? "" : ` (${pct(policy.returnThreshold)} moves on)`}`,
      gain: judged,
      state: kept,
    };
  if (!(judged > needed))
    return {
      action: "stay",
      reason: `${shown}; threshold ${pct(needed)}${back ? " (the plan just left)" : ""}`,
      gain: judged,
      state: kept,
    };
  const since = state.aboveSince ?? s.atMs;
  const held = s.atMs - since;
  if (held < policy.holdMs)
    return {
      action: "wait",
      reason: `${shown} for ${Math.round(held)} of ${policy.holdMs} ms`,
      gain: judged,
      state: { ...kept, aboveSince: since },
    };
  const moveS =
    (s.bandwidth > 0 ? s.moveBytes / s.bandwidth : s.moveBytes > 0 ? Infinity : 0) + (s.pauseMs ?? 0) / 1000;
  const gained = (s.best - s.running) * (policy.horizonMs / 1000);
  // While moving, the running plan's requests are delayed (at worst lost to the horizon).
  const lost = s.running * moveS;
  if (!(gained > lost))
    return {
      action: "stay",
      reason: `${shown}, but moving (${moveS.toFixed(2)} s) costs ${lost.toFixed(0)} requests against ${gained.toFixed(0)} gained over ${policy.horizonMs} ms`,
      gain: judged,
      state: { ...kept, aboveSince: since },
    };
  return {
    action: "switch",
    reason: `${shown} for ${Math.round(held)} ms (${s.running.toFixed(1)} -> ${s.best.toFixed(1)}/s)`,
    gain: judged,
    state: {
      switchedAt: s.atMs,
      ...(s.runningKey !== undefined ? { left: s.runningKey } : {}),
    },
  };
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "inf%";
}
