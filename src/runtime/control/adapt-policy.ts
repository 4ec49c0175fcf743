/**
 * When to re-partition a running split: a pure function of the estimates over time, so it can be tested
 * with synthetic sequences. Switch when the best plan under the current estimates beats the running plan's
 * predicted throughput by more than `threshold` continuously for `holdMs`, and the requests gained over
 * `horizonMs` outweigh those lost while moving (stage bytes to ship over the link, plus the pause of the cut-over).
 */

/** Parameters of the decision. */
export interface AdaptPolicy {
  /** Relative gain the best plan must show, in (0, 1) (default 0.15: 15%). */
  threshold: number;
  /** How long the gain must hold without a break before a switch, ms (default 3000). */
  holdMs: number;
  /** Time over which the gain is counted against the cost of moving, ms (default 60000). */
  horizonMs: number;
}

/** The defaults: 15%, 3 s, 60 s. */
export const DEFAULT_ADAPT_POLICY: AdaptPolicy = { threshold: 0.15, holdMs: 3000, horizonMs: 60000 };

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
}

/** What the decision remembers between samples. */
export interface AdaptState {
  /** When the gain went above the threshold and stayed there, ms (undefined: it is not above). */
  aboveSince?: number;
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
  return p;
}

/**
 * Decides for one sample. `stay`: the gain is at most the threshold (the hold restarts), or it held but does
 * not pay for the move; `wait`: above the threshold for less than the hold; `switch`: above for the hold and
 * worth it (the state restarts, so the next switch needs a new hold).
 */
export function decideAdapt(state: AdaptState, s: AdaptSample, policy: AdaptPolicy): AdaptDecision {
  const gain = s.running > 0 ? s.best / s.running - 1 : s.best > 0 ? Number.POSITIVE_INFINITY : 0;
  if (!(gain > policy.threshold))
    return {
      action: "stay",
      reason: `best plan ${pct(gain)} over the running one (threshold ${pct(policy.threshold)})`,
      gain,
      state: {},
    };
  const since = state.aboveSince ?? s.atMs;
  const held = s.atMs - since;
  if (held < policy.holdMs)
    return {
      action: "wait",
      reason: `best plan ${pct(gain)} better for ${Math.round(held)} of ${policy.holdMs} ms`,
      gain,
      state: { aboveSince: since },
    };
  const moveS =
    (s.bandwidth > 0 ? s.moveBytes / s.bandwidth : s.moveBytes > 0 ? Infinity : 0) + (s.pauseMs ?? 0) / 1000;
  const gained = (s.best - s.running) * (policy.horizonMs / 1000);
  // While moving, the running plan's requests are delayed (at worst lost to the horizon).
  const lost = s.running * moveS;
  if (!(gained > lost))
    return {
      action: "stay",
      reason: `best plan ${pct(gain)} better, but moving (${moveS.toFixed(2)} s) costs ${lost.toFixed(0)} requests against ${gained.toFixed(0)} gained over ${policy.horizonMs} ms`,
      gain,
      state: { aboveSince: since },
    };
  return {
    action: "switch",
    reason: `best plan ${pct(gain)} better for ${Math.round(held)} ms (${s.running.toFixed(1)} -> ${s.best.toFixed(1)}/s)`,
    gain,
    state: {},
  };
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "inf%";
}
