import type { Manifest } from "../../export/manifest.js";
import { CleaveError, errorMessage, RuntimeFault } from "../../errors.js";
import { type BackoffOptions, backoffDelay, sleep } from "../backoff.js";
import { type DeployOptions, deploy } from "../coordinator/deploy.js";
import {
  type InferOptions,
  type LossCause,
  type Pipeline,
  type PipelineBreak,
  type PipelineStats,
  type RunManyOptions,
  type RunReport,
  type RunRequests,
  runRequests,
  type Tensors,
  type WorkerAddress,
} from "../coordinator/pipeline.js";
import { logger } from "../log.js";
import { connectWorker } from "../transport/handshake.js";
import type { StatsReplyMsg } from "../transport/protocol.js";
import { makeTransport } from "../transport/transports.js";

const log = logger("runtime:control");

/**
 * The control loop of a deployment: it owns the current {@link Pipeline} and its epoch, and keeps serving
 * while devices fail and come back.
 *
 * - **Failure**: when a loss breaks the pipeline (a worker's connection closed, a worker could not reach it, or
 *   the heartbeat found it silent: see Pipeline.startHeartbeat), the requests in flight end on the old
 *   pipeline, `replan(alive)` gives a split over the devices left, it is deployed under the next epoch (stage
 *   files a worker holds in its cache are not sent again), and every request that had not completed runs
 *   again on it. Nothing is answered twice: a request resolves once, and frames of an old epoch are dropped on
 *   both sides. A request fails only when its own deadline passes (the message says so, and what it waited for)
 *   or when no feasible plan remains (`replan` throws, or no device is left: the message starts
 *   `no feasible plan remains`).
 * - **Rejoin**: a lost device's endpoint is tried again with backoff (a probe handshake); once it answers,
 *   `replan` is asked again with it among the devices, and the new split replaces the running one through
 *   {@link Controller.switchTo}.
 * - **Switch** (also for planned re-partitions from above): the new split is deployed beside the running one
 *   (workers hold two deployments), new requests go to it once it is ready, and the old one is closed once
 *   its requests finished. No request is lost or duplicated; `pauseMs` of the `replan` event is the longest
 *   time no request completed during it.
 *
 * Events (`on`): `recovery` ({@link RecoveryEvent}, once the first request completes on the new deployment,
 * or when the controller closes first), `replan` ({@link ReplanEvent}), `lost` and `rejoined`
 * ({@link DeviceEvent}). Times in events are ms from the fault, estimated as the last frame (tensor, pong,
 * busy notice) received from the device. Start one with {@link startController}; `close()` it when done.
 */
export class Controller {
  private current: Deployment;
  private epoch: number;
  /** Set while requests must wait: a recovery or a switch is in progress. */
  private gate?: { promise: Promise<void>; open: () => void; why: string };
  /** Set when no feasible plan remains: every later request fails with it. */
  private down?: RuntimeFault;
  private closed = false;
  private readonly lost = new Map<string, { cause: LossCause; since: number }>();
  private readonly probing = new Set<string>();
  private readonly listeners: { [K in keyof ControllerEvents]: Array<(e: ControllerEvents[K]) => void> } = {
    recovery: [],
    replan: [],
    lost: [],
    rejoined: [],
  };
  /** A recovery whose deployment is up, waiting for its first completed request to be reported. */
  private pendingRecovery?: { event: Omit<RecoveryEvent, "restoredMs">; readyAt: number; faultAt: number };
  private replayedNow = 0;
  /** Set while a switch deploys beside the running deployment and the old one drains. */
  private switching?: Promise<void>;
  /** The deployment a switch left, while its requests finish. */
  private draining?: Deployment;
  /** While a switch runs: the last completion and the longest time between two, ms. */
  private gaps?: { last: number; longest: number };
  /** The last epoch given to a deployment (the current one's, or a newer one being deployed). */
  private issued: number;
  private readonly work = new Set<Promise<unknown>>();
  /** Aborted by close(): ends the probes' waits at once. */
  private readonly stopping = new AbortController();
  /** Every recovery so far, in order. */
  readonly recoveries: RecoveryEvent[] = [];
  /** Every re-plan (rejoin, or a switch asked from above) so far, in order. */
  readonly replans: ReplanEvent[] = [];
  private readonly counters = { requests: 0, completed: 0, failed: 0, replayed: 0 };

  /** @internal Use {@link startController}. */
  constructor(
    first: Deployment,
    private readonly workers: readonly WorkerAddress[],
    private readonly opts: ControllerOptions,
  ) {
    this.current = first;
    this.epoch = first.pipeline.epoch;
    this.issued = this.epoch;
    this.watch(first);
  }

  /** The pipeline requests go to now (it changes after a recovery or a switch). */
  get pipeline(): Pipeline {
    return this.current.pipeline;
  }

  /** The split deployed now. */
  get deployed(): Deployable {
    return this.current.source;
  }

  /** Epoch of the current deployment (1 for the first; one more for each deployment since). */
  get currentEpoch(): number {
    return this.epoch;
  }

  /** Names of the devices lost and not back yet. */
  get lostDevices(): string[] {
    return [...this.lost.keys()];
  }

  /** True while requests are served at once (no recovery or switch in progress, a plan deployed). */
  get ready(): boolean {
    return this.gate === undefined && this.down === undefined && !this.closed;
  }

  /** Adds a listener for one kind of event. */
  on<K extends keyof ControllerEvents>(kind: K, fn: (e: ControllerEvents[K]) => void): void {
    this.listeners[kind].push(fn);
  }

  /**
   * Runs one request, across recoveries: when the deployment it runs on breaks, it waits for the next one and
   * runs there (counted in `replayed`). Rejects with the pipeline's error when a stage fails it or its feeds
   * are wrong, with a RuntimeFault when `deadlineMs` (default: the controller's) passes, saying what it waited
   * for, and with one starting `no feasible plan remains` when no device is left to run it on.
   */
  async infer(feeds: Tensors, opts: InferOptions = {}): Promise<Tensors> {
    const deadlineMs = opts.deadlineMs ?? this.opts.deadlineMs ?? this.opts.deploy?.timeoutMs ?? 30000;
    const t0 = performance.now();
    const id = ++this.counters.requests;
    let replayed = false;
    for (;;) {
      if (this.closed) throw new RuntimeFault("RUNTIME", "controller is closed");
      if (this.down) throw this.down;
      const left = deadlineMs - (performance.now() - t0);
      if (this.gate) {
        const why = this.gate.why;
        if (!(await this.waitGate(left, opts.signal)))
          throw this.fault(
            new RuntimeFault(
              "RUNTIME",
              `request ${id}: the deadline of ${deadlineMs} ms passed while ${why}`,
            ),
          );
        continue;
      }
      if (left <= 0)
        throw this.fault(
          new RuntimeFault("RUNTIME", `request ${id}: the deadline of ${deadlineMs} ms passed`),
        );
      const d = this.current;
      d.active++;
      try {
        const out = await d.pipeline.infer(feeds, { deadlineMs: left, signal: opts.signal });
        this.counters.completed++;
        this.completedOn(d);
        if (this.gaps) {
          const t = performance.now();
          this.gaps.longest = Math.max(this.gaps.longest, t - this.gaps.last);
          this.gaps.last = t;
        }
        return out;
      } catch (err) {
        // The deployment broke under it: run it again on the next one (this.gate is already set).
        if (d.pipeline.broken !== undefined && this.opts.recover !== false && !opts.signal?.aborted) {
          if (!replayed) {
            replayed = true;
            this.counters.replayed++;
          }
          this.replayedNow++;
          continue;
        }
        throw this.fault(err);
      } finally {
        d.active--;
        if (d.active === 0) d.drained?.();
      }
    }
  }

  /** Like Pipeline.runMany, through {@link infer}: requests survive recoveries and switches. */
  runMany(requests: RunRequests, opts: RunManyOptions = {}): Promise<RunReport> {
    // Stops starting requests once none can be served: no feasible plan left, or a break with recovery off.
    return runRequests(
      (f, o) => this.infer(f, o),
      this.current.pipeline.maxInFlight,
      requests,
      opts,
      () =>
        this.closed ||
        this.down !== undefined ||
        (this.opts.recover === false && this.current.pipeline.broken !== undefined),
    );
  }

  /** The current pipeline's counters, with the controller's own. */
  stats(): PipelineStats & {
    epoch: number;
    requests: number;
    requestsCompleted: number;
    requestsFailed: number;
    requestsReplayed: number;
    lost: string[];
  } {
    return {
      ...this.current.pipeline.stats(),
      epoch: this.epoch,
      requests: this.counters.requests,
      requestsCompleted: this.counters.completed,
      requestsFailed: this.counters.failed,
      requestsReplayed: this.counters.replayed,
      lost: this.lostDevices,
    };
  }

  /** Per-stage counters of the current deployment's workers. */
  workerStats(timeoutMs?: number): Promise<StatsReplyMsg[]> {
    return this.current.pipeline.workerStats(timeoutMs);
  }

  /**
   * Replaces the running split with `next` without pausing requests: `next` is deployed beside the running
   * deployment under the next epoch (workers hold both; stage files they hold are not sent), and once it is
   * ready new requests go to it, while those in flight finish on the old deployment, which is closed once they
   * have. A request the old deployment fails by breaking runs again on the new one, so none is lost or
   * answered twice. If `next` cannot be deployed the running split stays and the promise rejects. Resolves
   * to the event also emitted as `replan`: `switchMs` is how long the switch took from the call until the old
   * deployment drained, `pauseMs` the longest time no request completed during it. `reason` and the
   * throughputs are the caller's (a planner's predictions, or measurements).
   */
  async switchTo(
    next: Deployable,
    reason: string,
    figures: { fromThroughput?: number; toThroughput?: number; encodings?: ReplanEvent["encodings"] } = {},
  ): Promise<ReplanEvent> {
    while (this.gate || this.switching) await (this.gate?.promise ?? this.switching);
    if (this.closed) throw new RuntimeFault("RUNTIME", "controller is closed");
    if (this.down) throw this.down;
    const t0 = performance.now();
    const old = this.current;
    const gaps = { last: t0, longest: 0 };
    this.gaps = gaps;
    let done = () => {};
    this.switching = new Promise<void>((r) => (done = r));
    try {
      const p = await this.deployOn(next, devicesOf(next.manifest));
      if (this.closed || this.current !== old) {
        // Closed, or a recovery replaced the deployment meanwhile: the new split is not wanted now.
        await p.close();
        throw new RuntimeFault(
          "RUNTIME",
          `switch (${reason}) overtaken: the deployment changed while it deployed`,
        );
      }
      this.adopt({ pipeline: p, source: next, active: 0 });
      this.draining = old;
      if (old.active > 0) await new Promise<void>((r) => (old.drained = r));
      this.draining = undefined;
      await old.pipeline.close();
      const now = performance.now();
      const event: ReplanEvent = {
        reason,
        fromThroughput: figures.fromThroughput ?? old.source.throughput ?? Number.NaN,
        toThroughput: figures.toThroughput ?? next.throughput ?? Number.NaN,
        switchMs: now - t0,
        pauseMs: Math.max(gaps.longest, now - gaps.last),
        epoch: p.epoch,
        shippedBytes: p.stageLoads.reduce((n, l) => n + l.bytes, 0),
        ...(figures.encodings ? { encodings: figures.encodings } : {}),
      };
      this.replans.push(event);
      this.emit("replan", event);
      return event;
    } catch (err) {
      log(`switch (${reason}) failed: ${errorMessage(err)}; the running split stays`);
      throw err;
    } finally {
      this.gaps = undefined;
      this.draining = undefined;
      this.switching = undefined;
      done();
    }
  }

  /**
   * Stops probing lost devices, ends waiting requests, closes the current deployment and reports a recovery
   * still waiting for its first completion (restoredMs: when its deployment was ready).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopping.abort(new RuntimeFault("RUNTIME", "controller is closed"));
    this.gate?.open();
    this.flushRecovery(undefined);
    await Promise.allSettled([...this.work]);
    await Promise.all([this.current.pipeline.close(), this.draining?.pipeline.close()]);
  }

  // ---- internals ----

  private emit<K extends keyof ControllerEvents>(kind: K, e: ControllerEvents[K]): void {
    for (const fn of this.listeners[kind]) {
      try {
        fn(e);
      } catch (err) {
        log(`a ${kind} listener threw: ${errorMessage(err)}`);
      }
    }
  }

  /** Counts a failed request and passes its error on. */
  private fault(err: unknown): unknown {
    this.counters.failed++;
    return err;
  }

  private track<T>(p: Promise<T>): void {
    const q = p.catch((err) => log(`background work failed: ${errorMessage(err)}`));
    this.work.add(q);
    void q.finally(() => this.work.delete(q));
  }

  /** Waits for the gate to open; false when `ms` passed (or the signal aborted) first. */
  private async waitGate(ms: number, signal?: AbortSignal): Promise<boolean> {
    const gate = this.gate;
    if (!gate) return true;
    if (ms <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
      onAbort = () => resolve(false);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([gate.promise.then(() => true as const), timedOut]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  private shut(why: string): void {
    if (this.gate) {
      this.gate.why = why;
      return;
    }
    let open = () => {};
    const promise = new Promise<void>((r) => (open = r));
    this.gate = { promise, open, why };
  }

  private reopen(): void {
    const g = this.gate;
    this.gate = undefined;
    g?.open();
  }

  private goDown(why: string): void {
    const message = why.startsWith("no feasible plan remains") ? why : `no feasible plan remains: ${why}`;
    this.down = new RuntimeFault("WORKER", message);
    log(message);
  }

  private adopt(d: Deployment): void {
    this.current = d;
    this.epoch = d.pipeline.epoch;
    this.watch(d);
  }

  private watch(d: Deployment): void {
    d.pipeline.onBreak((b) => {
      if (this.closed || this.current !== d) return;
      this.track(this.recover(d, b));
    });
  }

  /** The devices not lost, as workers, in the order given. */
  private aliveWorkers(): WorkerAddress[] {
    return this.workers.filter((w) => !this.lost.has(w.name));
  }

  private deployOn(source: Deployable, devices: readonly string[]): Promise<Pipeline> {
    const byName = new Map(this.workers.map((w) => [w.name, w]));
    const ws = devices.map((d) => {
      const w = byName.get(d);
      if (!w)
        throw new RuntimeFault("WORKER", `the split names device '${d}', which has no worker`, { device: d });
      return w;
    });
    this.issued = (this.issued + 1) >>> 0 || 1;
    return deploy(source, ws, {
      ...this.opts.deploy,
      ...(this.opts.heartbeatMs !== undefined ? { heartbeatMs: this.opts.heartbeatMs } : {}),
      epoch: this.issued,
    });
  }

  private markLost(device: string, cause: LossCause, message: string): void {
    if (this.lost.has(device)) return;
    this.lost.set(device, { cause, since: performance.now() });
    this.emit("lost", { device, cause, message });
    if (this.opts.rejoin !== false) this.track(this.probe(device));
  }

  /** After a loss broke deployment `d`: re-plan over the devices left, deploy, let the requests run again. */
  private async recover(d: Deployment, b: PipelineBreak): Promise<void> {
    if (this.opts.recover === false) {
      this.down = b.error;
      return;
    }
    this.shut(`recovering from the loss of ${b.device}`);
    this.replayedNow = 0;
    this.markLost(b.device, b.cause, b.message);
    for (const w of d.pipeline.stats().workers) if (!w.alive) this.markLost(w.name, "closed", "lost earlier");
    await d.pipeline.close();
    try {
      for (let attempt = 0; !this.closed; attempt++) {
        const alive = this.aliveWorkers();
        if (alive.length === 0) {
          this.goDown(`every device is lost (last: ${b.device}: ${b.message})`);
          return;
        }
        let next: Deployable;
        try {
          next = await this.opts.replan(
            alive.map((w) => w.name),
            { reason: "loss", device: b.device },
          );
        } catch (err) {
          this.goDown(`${errorMessage(err)} (after the loss of ${b.device})`);
          return;
        }
        try {
          const p = await this.deployOn(next, devicesOf(next.manifest));
          this.adopt({ pipeline: p, source: next, active: 0 });
          this.pendingRecovery = {
            event: {
              cause: b.cause,
              device: b.device,
              detectedMs: b.detectedAt - b.lastSeenAt,
              replayed: 0,
              epoch: this.epoch,
              message: b.message,
            },
            readyAt: performance.now(),
            faultAt: b.lastSeenAt,
          };
          log(
            `recovered from the loss of ${b.device}: epoch ${this.epoch} on ${devicesOf(next.manifest).join(", ")}`,
          );
          return;
        } catch (err) {
          // A device that fails the deploy is lost too (it died since, or never came back); try without it.
          const bad = err instanceof CleaveError ? err.context.device : undefined;
          log(`redeploy attempt ${attempt + 1} failed: ${errorMessage(err)}`);
          if (bad !== undefined && this.workers.some((w) => w.name === bad))
            this.markLost(bad, "closed", errorMessage(err));
          else await sleep(backoffDelay(attempt, { initialMs: 50, maxMs: 1000 }));
          if (attempt >= 20) {
            this.goDown(`redeploy failed ${attempt + 1} times: ${errorMessage(err)}`);
            return;
          }
        }
      }
    } finally {
      this.reopen();
    }
  }

  /** The first completed request on a deployment: reports the recovery that made it. */
  private completedOn(d: Deployment): void {
    if (this.pendingRecovery && d === this.current) this.flushRecovery(performance.now());
  }

  private flushRecovery(at: number | undefined): void {
    const r = this.pendingRecovery;
    if (!r) return;
    this.pendingRecovery = undefined;
    const event: RecoveryEvent = {
      ...r.event,
      restoredMs: (at ?? r.readyAt) - r.faultAt,
      replayed: this.replayedNow,
    };
    this.recoveries.push(event);
    this.emit("recovery", event);
  }

  /** Tries a lost device's endpoint with backoff until it answers; then re-plans with it. */
  private async probe(device: string): Promise<void> {
    const w = this.workers.find((x) => x.name === device);
    if (!w || this.probing.has(device)) return;
    this.probing.add(device);
    const dep = this.opts.deploy ?? {};
    const transport = makeTransport(dep.transport ?? "tcp", {
      maxFrameBytes: dep.maxFrameBytes,
      tls: dep.tls,
    });
    const backoff: BackoffOptions = this.opts.rejoinBackoff ?? { initialMs: 200, maxMs: 5000 };
    try {
      for (let attempt = 0; !this.closed && this.lost.has(device); attempt++) {
        await sleep(backoffDelay(attempt, backoff), this.stopping.signal);
        if (this.closed) return;
        try {
          const { conn } = await connectWorker(transport, w.endpoint, {
            token: dep.token,
            role: "probe",
            from: "coordinator",
            timeoutMs: Math.max(1000, this.opts.heartbeatMs ?? 1000),
            signal: this.stopping.signal,
          });
          conn.close();
        } catch {
          continue;
        }
        this.lost.delete(device);
        log(`device ${device} answers again at ${w.endpoint}`);
        this.emit("rejoined", { device, cause: "closed", message: `answers again at ${w.endpoint}` });
        await this.rejoin(device);
        return;
      }
    } finally {
      this.probing.delete(device);
    }
  }

  /** A device is back: re-plan with it and switch, unless the plan stays the same. */
  private async rejoin(device: string): Promise<void> {
    while (this.gate && !this.closed) await this.gate.promise;
    if (this.closed) return;
    const alive = this.aliveWorkers().map((w) => w.name);
    let next: Deployable;
    try {
      next = await this.opts.replan(alive, { reason: "rejoin", device });
    } catch (err) {
      log(`no plan with ${device} back: ${errorMessage(err)}`);
      return;
    }
    const wasDown = this.down !== undefined;
    if (wasDown) {
      // Nothing ran: deploy directly (no old deployment to drain).
      this.down = undefined;
    }
    try {
      await this.switchTo(next, `rejoin ${device}`);
    } catch (err) {
      log(`switch after ${device} came back failed: ${errorMessage(err)}`);
    }
  }
}

/** A split ready to deploy: its manifest (stages and their devices) and the folder of its stage files. */
export interface Deployable {
  manifest: Manifest;
  dir: string;
  /** Predicted (or measured) inferences/s, reported in `replan` events; optional. */
  throughput?: number;
  /**
   * The split in the planner's terms, when the layer that planned it says (opaque to the runtime): live
   * re-partitioning prices what runs from it after a recovery replaced the split it started with.
   */
  split?: unknown;
}

/**
 * Asks the layer that plans for a split over `alive` (device names, in the order the controller was given
 * them). `why` says what changed. Throwing means no feasible plan remains (the controller fails requests with
 * the message).
 */
export type Replan = (
  alive: readonly string[],
  why: { reason: "loss" | "rejoin"; device: string },
) => Promise<Deployable>;

/** Options of {@link startController}. */
export interface ControllerOptions {
  /** Re-planning over the devices left (e.g. `reassignStages`, or a planner run by the caller). */
  replan: Replan;
  /** How each deployment is made (token, TLS, timeouts, in-flight bound, link delays...). */
  deploy?: Omit<DeployOptions, "epoch" | "signal">;
  /** Failure detector, ms (default DEFAULT_HEARTBEAT_MS: 1000). */
  heartbeatMs?: number;
  /** Default deadline of a request, across recoveries, ms (default deploy.timeoutMs, else 30000). */
  deadlineMs?: number;
  /** Recover from a lost device (default true); false: a loss fails every request, as a bare Pipeline does. */
  recover?: boolean;
  /** Probe lost devices and re-plan with them when they answer (default true). */
  rejoin?: boolean;
  /** Backoff of those probes (default 200 ms doubling to 5 s). */
  rejoinBackoff?: BackoffOptions;
}

/**
 * A recovery from a lost device. `detectedMs` and `restoredMs` are counted from the fault, estimated as the
 * last frame received from the device: when the loss was noticed, and when the first request completed on the
 * deployment that replaced it (or, when none did before close, when that deployment was ready).
 */
export interface RecoveryEvent {
  cause: LossCause;
  device: string;
  detectedMs: number;
  restoredMs: number;
  /** Requests that ran again on the new deployment (each counted once per recovery). */
  replayed: number;
  /** Epoch of the deployment that replaced it. */
  epoch: number;
  /** Why the device was lost, in one line. */
  message: string;
}

/** A re-partition: a rejoin, or a switch asked from above (`switchTo`). */
export interface ReplanEvent {
  reason: string;
  /** Inferences/s of the split before and after, as predicted or measured by the caller (NaN: unknown). */
  fromThroughput: number;
  toThroughput: number;
  /**
   * How long the switch took, ms: from its start until the old deployment drained (requests keep being
   * served meanwhile: the old deployment serves until the new one is ready).
   */
  switchMs: number;
  /** The longest time no request completed during the switch, ms (absent for a re-plan that is no switch). */
  pauseMs?: number;
  /** Epoch of the new deployment. */
  epoch: number;
  /** Stage bytes sent to deploy it (0 when every worker had its stages cached). */
  shippedBytes: number;
  /** The cut tensors' encodings before and after (`x int8, y float16`, or `float32`), for re-plans under a budget. */
  encodings?: { from: string; to: string };
}

/** A device lost or back. */
export interface DeviceEvent {
  device: string;
  cause: LossCause;
  message: string;
}

/** What {@link Controller.on} listens to. */
export interface ControllerEvents {
  recovery: RecoveryEvent;
  replan: ReplanEvent;
  lost: DeviceEvent;
  rejoined: DeviceEvent;
}

interface Deployment {
  pipeline: Pipeline;
  source: Deployable;
  /** Requests in its infer() now. */
  active: number;
  /** Called when `active` drops to 0 (a switch waits for it). */
  drained?: () => void;
}

/** Every device a manifest's stages name, each once, in stage order. */
export function devicesOf(manifest: Manifest): string[] {
  const out: string[] = [];
  for (const s of manifest.stages)
    for (const d of s.devices !== undefined && s.devices.length > 0
      ? s.devices
      : s.device !== undefined
        ? [s.device]
        : [])
      if (!out.includes(d)) out.push(d);
  return out;
}

/**
 * Deploys `first` on its devices (named in its manifest; each must be in `workers`) under epoch 1 and returns
 * the controller that keeps it serving. `workers` are every device it may use, also later (a lost device's
 * endpoint is probed there). Throws as deploy() does when the first deployment fails.
 */
export async function startController(
  first: Deployable,
  workers: readonly WorkerAddress[],
  opts: ControllerOptions,
): Promise<Controller> {
  const devices = devicesOf(first.manifest);
  const byName = new Map(workers.map((w) => [w.name, w]));
  const ws =
    devices.length > 0 && devices.every((d) => byName.has(d))
      ? devices.map((d) => byName.get(d)!)
      : [...workers];
  const pipeline = await deploy(first, ws, {
    ...opts.deploy,
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
    epoch: 1,
  });
  return new Controller({ pipeline, source: first, active: 0 }, workers, opts);
}
