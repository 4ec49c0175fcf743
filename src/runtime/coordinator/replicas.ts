/**
 * Replica groups and the coordinator's dispatch policy. A stage run by several devices has a group of
 * replicas; each request runs on one replica of every stage, chosen when it is dispatched: the live replica
 * that minimises (outstanding + 1) x its service time, so a replica twice as fast gets about twice the
 * requests and one that fell behind gets fewer. The service time starts from the weight the caller gives
 * (e.g. the plan's share: service ~ 1 / weight) and is then the replica's measured time per request.
 */

/** Weight of the newest sample in a replica's smoothed service time. */
const SERVICE_SMOOTHING = 0.2;

/** Counters of one replica (the device running one stage), since deploy. */
export interface ReplicaStats {
  /** Stage number. */
  stage: number;
  /** Position in the stage's group (the index a request path names). */
  replica: number;
  device: string;
  endpoint: string;
  /** False once the replica was lost (its connection closed, or another worker could not reach it). */
  alive: boolean;
  /** Requests sent through it (re-dispatched ones counted again). dispatched = completed + failed + outstanding. */
  dispatched: number;
  /** Requests whose outputs all came back. */
  completed: number;
  /** Requests dispatched to it not yet answered. */
  outstanding: number;
  /**
   * Requests through it that ended without an answer: failed anywhere on their path, timed out, aborted,
   * or re-dispatched after a replica of their path was lost.
   */
  failed: number;
  /** Smoothed time per request while it is busy, ms (undefined before its first completion). */
  serviceMs?: number;
  /** The weight it was deployed with (relative speed; 1 when none was given). */
  weight: number;
}

/** One replica of one stage. `L` is whatever the coordinator keeps per worker connection. */
export class Replica<L> {
  alive = true;
  dispatched = 0;
  completed = 0;
  failed = 0;
  outstanding = 0;
  /** Smoothed time per request, ms. */
  serviceMs?: number;
  /** performance.now() of its latest completion. */
  lastDone = Number.NEGATIVE_INFINITY;

  constructor(
    readonly link: L,
    readonly stage: number,
    readonly index: number,
    readonly device: string,
    readonly endpoint: string,
    readonly weight: number,
  ) {}

  /** A request was sent through this replica. */
  dispatch(): void {
    this.dispatched++;
    this.outstanding++;
  }

  /**
   * A request dispatched at `startedAt` (performance.now(), ms) ended at `now`. A completion feeds the service
   * time: the request occupied the replica from when it arrived or the previous request left, whichever is
   * later, until now (a FIFO server's service time, as seen from the coordinator).
   */
  end(completed: boolean, startedAt: number, now: number): void {
    this.outstanding--;
    if (!completed) {
      this.failed++;
      return;
    }
    this.completed++;
    // A request that queued behind the previous one measures the service time itself; one that found the
    // replica idle also carries the trip there and back, so it may only lower the estimate (otherwise a replica
    // that is sent little looks slow and is sent less).
    const queued = startedAt < this.lastDone;
    const sample = now - Math.max(startedAt, this.lastDone);
    this.lastDone = now;
    if (this.serviceMs === undefined) this.serviceMs = sample;
    else if (queued || sample < this.serviceMs)
      this.serviceMs += SERVICE_SMOOTHING * (sample - this.serviceMs);
  }

  stats(): ReplicaStats {
    return {
      stage: this.stage,
      replica: this.index,
      device: this.device,
      endpoint: this.endpoint,
      alive: this.alive,
      dispatched: this.dispatched,
      completed: this.completed,
      outstanding: this.outstanding,
      failed: this.failed,
      ...(this.serviceMs !== undefined ? { serviceMs: this.serviceMs } : {}),
      weight: this.weight,
    };
  }
}

/** The replicas of one stage, in group order. */
export class ReplicaGroup<L> {
  constructor(
    readonly stage: number,
    readonly replicas: readonly Replica<L>[],
  ) {}

  /** Replicas still alive. */
  get alive(): Replica<L>[] {
    return this.replicas.filter((r) => r.alive);
  }

  /**
   * Expected time per request on `r`, ms or relative units: its measured service time; before it has one,
   * the group's other measured replicas scaled by weight (service x weight is the same for replicas that match
   * their weights); with nothing measured, 1 / weight. An idle replica whose estimate is older than the time it
   * claims a request takes gets the smaller of its estimate and that prior: a slow early sample (a cold session,
   * a busy moment) must not keep from it the requests whose times would correct it.
   */
  estimate(r: Replica<L>, now = performance.now()): number {
    if (r.serviceMs === undefined) return this.prior(r);
    if (r.outstanding === 0 && now - r.lastDone > r.serviceMs) return Math.min(r.serviceMs, this.prior(r));
    return r.serviceMs;
  }

  /** What the other replicas' measured times and the weights say `r` should take per request. */
  private prior(r: Replica<L>): number {
    let sum = 0;
    let n = 0;
    for (const o of this.replicas)
      if (o !== r && o.serviceMs !== undefined) {
        sum += o.serviceMs * o.weight;
        n++;
      }
    return n > 0 ? sum / n / r.weight : 1 / r.weight;
  }

  /**
   * The live replica to run the next request: least (outstanding + 1) x estimate, ties to fewer outstanding
   * and then to the earlier replica. Undefined when none is alive.
   */
  pick(): Replica<L> | undefined {
    let best: Replica<L> | undefined;
    let bestCost = Number.POSITIVE_INFINITY;
    const now = performance.now();
    for (const r of this.replicas) {
      if (!r.alive) continue;
      if (this.replicas.length === 1) return r;
      const cost = (r.outstanding + 1) * this.estimate(r, now);
      if (cost < bestCost || (cost === bestCost && best !== undefined && r.outstanding < best.outstanding)) {
        best = r;
        bestCost = cost;
      }
    }
    return best;
  }
}
