import type { StatsReplyMsg } from "../transport/protocol.js";

/**
 * Online cost estimates from live traffic: each stage's compute time per run (from the workers' own counters,
 * `stats-reply`) and the pipeline's completed requests per second (from the coordinator's counts), each
 * smoothed by an exponentially weighted moving average.
 *
 * An EWMA rather than a windowed median: a step (a link cut, a CPU quota) moves it most of the way within
 * 1 / alpha samples (alpha 0.3: ~3 samples, 1.5 s at the default 500 ms interval) in O(1) memory, and noise
 * that survives it cannot make the plan flap, because the decision (adapt-policy.ts) asks for the gain to hold
 * for a hold time before it switches; a median of the same window would lag a step by half the window.
 */

/** An exponentially weighted moving average: `value = alpha * x + (1 - alpha) * value`, starting at the first x. */
export class Ewma {
  private v: number | undefined;
  private n = 0;

  /** `alpha` in (0, 1]: the weight of the newest sample. */
  constructor(readonly alpha = 0.3) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`EWMA alpha must be in (0, 1], got ${alpha}`);
  }

  /** Adds a sample (non-finite ones are ignored) and returns the average. */
  add(x: number): number | undefined {
    if (!Number.isFinite(x)) return this.v;
    this.v = this.v === undefined ? x : this.alpha * x + (1 - this.alpha) * this.v;
    this.n++;
    return this.v;
  }

  /** The average, undefined before the first sample. */
  get value(): number | undefined {
    return this.v;
  }

  /** Samples taken. */
  get count(): number {
    return this.n;
  }
}

/** One stage's cumulative counters as a worker reported them. */
interface Counters {
  runs: number;
  computeMs: number;
  serviceMs?: number;
}

/** Options of {@link OnlineEstimates}. */
export interface EstimateOptions {
  /** EWMA weight of the newest window (default 0.3). */
  alpha?: number;
  /** A window with fewer runs of a stage than this leaves its estimate as it was (default 3). */
  minRuns?: number;
}

/** What the estimates say now. */
export interface EstimateSnapshot {
  /** Smoothed compute time per run of each stage, ms, by stage number (stages with no estimate yet absent). */
  stageMs: Map<number, number>;
  /**
   * Smoothed service time per run of each stage (StageStats.serviceMs: the run, its framing and any time the
   * device's CPU was withheld), ms, by stage number; absent where the workers do not report it.
   */
  stageServiceMs?: Map<number, number>;
  /** The device each stage number ran on in the last snapshot (the first replica's, for a replicated stage). */
  stageDevice: Map<number, string>;
  /** Smoothed completed requests per second (undefined before two observations). */
  throughput?: number;
  /** Windows observed since the last reset. */
  windows: number;
}

/**
 * Turns successive cumulative counters (workers' stats, completed requests) into smoothed per-window rates.
 * Feed it with {@link observe} at a steady interval; {@link reset} when the deployment changes (its counters
 * restart).
 */
export class OnlineEstimates {
  private readonly alpha: number;
  private readonly minRuns: number;
  private stages = new Map<number, Ewma>();
  private service = new Map<number, Ewma>();
  private devices = new Map<number, string>();
  private tp = new Ewma();
  private last?: { at: number; completed: number; stages: Map<string, Counters> };
  private windows = 0;

  constructor(opts: EstimateOptions = {}) {
    this.alpha = opts.alpha ?? 0.3;
    this.minRuns = opts.minRuns ?? 3;
    this.tp = new Ewma(this.alpha);
  }

  /**
   * One observation: the workers' cumulative stats, the cumulative count of completed requests, and when
   * (performance.now(), ms). The first observation after a reset only sets the baseline.
   */
  observe(stats: readonly StatsReplyMsg[], completed: number, atMs: number): void {
    const now = new Map<string, Counters>();
    for (const w of stats)
      for (const s of w.stages) {
        now.set(`${w.worker}/${s.stage}`, { runs: s.runs, computeMs: s.computeMs, serviceMs: s.serviceMs });
        if (!this.devices.has(s.stage) || this.devices.get(s.stage) === w.worker)
          this.devices.set(s.stage, w.worker);
      }
    const prev = this.last;
    this.last = { at: atMs, completed, stages: now };
    if (!prev || atMs <= prev.at) return;
    this.windows++;
    this.tp.add(((completed - prev.completed) * 1000) / (atMs - prev.at));
    // Per stage number: runs and compute summed over its replicas in the window.
    const byStage = new Map<number, { runs: number; ms: number; serviceMs: number; serviceAll: boolean }>();
    for (const [key, c] of now) {
      const before = prev.stages.get(key);
      if (!before || c.runs < before.runs) continue;
      const stage = Number(key.slice(key.lastIndexOf("/") + 1));
      const acc = byStage.get(stage) ?? { runs: 0, ms: 0, serviceMs: 0, serviceAll: true };
      acc.runs += c.runs - before.runs;
      acc.ms += c.computeMs - before.computeMs;
      // A stage's service time counts only when every replica reports it.
      if (c.serviceMs === undefined || before.serviceMs === undefined) acc.serviceAll = false;
      else acc.serviceMs += c.serviceMs - before.serviceMs;
      byStage.set(stage, acc);
    }
    for (const [stage, { runs, ms, serviceMs, serviceAll }] of byStage) {
      if (runs < this.minRuns) continue;
      if (!this.stages.has(stage)) this.stages.set(stage, new Ewma(this.alpha));
      this.stages.get(stage)!.add(ms / runs);
      if (!serviceAll) continue;
      if (!this.service.has(stage)) this.service.set(stage, new Ewma(this.alpha));
      this.service.get(stage)!.add(serviceMs / runs);
    }
  }

  /** Forgets everything (a new deployment: its workers' counters start again). */
  reset(): void {
    this.stages = new Map();
    this.service = new Map();
    this.devices = new Map();
    this.tp = new Ewma(this.alpha);
    this.last = undefined;
    this.windows = 0;
  }

  /** The current estimates. */
  snapshot(): EstimateSnapshot {
    const stageMs = new Map<number, number>();
    for (const [s, e] of this.stages) if (e.value !== undefined) stageMs.set(s, e.value);
    const stageServiceMs = new Map<number, number>();
    for (const [s, e] of this.service) if (e.value !== undefined) stageServiceMs.set(s, e.value);
    return {
      stageMs,
      stageServiceMs,
      stageDevice: new Map(this.devices),
      ...(this.tp.value !== undefined ? { throughput: this.tp.value } : {}),
      windows: this.windows,
    };
  }
}
