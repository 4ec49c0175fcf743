import type { Manifest, TensorSpec } from "../../export/manifest.js";
import { ArgumentError, errorMessage, RuntimeFault } from "../../errors.js";
import type { ort } from "../../onnx/ort.js";
import { type Frame, frameTensor, tensorFrame } from "../transport/frame.js";
import { type LatencySummary, summarizeLatencies } from "../latency.js";
import { armDeadline, WaiterMap, waiter } from "../deadline.js";
import { logger } from "../log.js";
import type { BusyMsg, ErrorMsg, LoadedMsg, StatsReplyMsg } from "../transport/protocol.js";
import type { Replica, ReplicaGroup, ReplicaStats } from "./replicas.js";
import type { Connection } from "../transport/transport.js";

const log = logger("runtime:pipeline");

/** A worker the coordinator deploys to: its name (as in errors and in `stage.device`) and `host:port`. */
export interface WorkerAddress {
  name: string;
  endpoint: string;
}

/** Feeds or outputs of one request, by tensor name. */
export type Tensors = Record<string, ort.Tensor>;

/** Options of one {@link Pipeline.infer} call. */
export interface InferOptions {
  signal?: AbortSignal;
  /** The request fails with a RuntimeFault if its outputs are not all back within this long, ms (default: deploy's timeoutMs). */
  deadlineMs?: number;
}

/** Result of {@link Pipeline.runMany}. */
export interface RunReport {
  requests: number;
  completed: number;
  failed: number;
  /** The first errors, by request index (at most 20). */
  errors: Array<{ index: number; message: string }>;
  /** Wall time of the whole run, ms. */
  wallMs: number;
  /** Completed requests per second. */
  throughput: number;
  /** Latency of completed requests, from infer() to the last output, ms. */
  latencyMs: LatencySummary;
  /** Outputs by request index, when `keepOutputs` was set (undefined for failed requests). */
  outputs?: Array<Tensors | undefined>;
  /** Latency of each completed request in completion order, ms, when `keepLatencies` was set. */
  latencySamplesMs?: number[];
}

/** Counters of a pipeline since deploy. */
export interface PipelineStats {
  sent: number;
  completed: number;
  failed: number;
  inFlight: number;
  /** Requests waiting for an in-flight slot. */
  waiting: number;
  /** Frame bytes sent to and received from workers. */
  bytesSent: number;
  bytesReceived: number;
  /** `alive` is false once the worker was lost (only a replica can be lost without breaking the pipeline). */
  workers: Array<{
    name: string;
    endpoint: string;
    stages: number[];
    pid: number;
    threads: number;
    alive: boolean;
  }>;
  /** Per stage (in pipeline order), its replicas' counters (one replica for a stage run by one device). */
  stages: Array<{ stage: number; replicas: ReplicaStats[] }>;
  /** Requests sent again after a replica of their path was lost. */
  replayed: number;
}

/**
 * A replica lost without breaking the pipeline: its connection closed (`closed`), or another worker could not
 * send it a tensor (`unreachable`). `replayed` requests whose path used it were dispatched again on the rest
 * of their groups.
 */
export interface ReplicaLossEvent {
  cause: LossCause;
  device: string;
  /** The stages it was a replica of. */
  stages: number[];
  replayed: number;
  /** Why, in one line (the connection's error or the sending worker's message). */
  message: string;
  /** performance.now() when it was noticed, ms. */
  atMs: number;
}

/**
 * How a worker was lost: its connection closed (the process died, or the host closed it), another worker could
 * not send it a tensor (`unreachable`), or it stayed silent past the heartbeat allowance (`unresponsive`: hung,
 * stopped, or cut off).
 */
export type LossCause = "closed" | "unreachable" | "unresponsive";

/** The loss that broke a pipeline: a worker whose stage had no other replica. */
export interface PipelineBreak {
  cause: LossCause;
  device: string;
  endpoint: string;
  /** Stages it ran. */
  stages: number[];
  /** Why, in one line. */
  message: string;
  /**
   * performance.now() of the last frame (tensor, pong, busy notice) received from it, ms: the estimate of when
   * the fault happened (a fault between two frames is noticed from the first one missing).
   */
  lastSeenAt: number;
  /** performance.now() when the loss was noticed, ms. */
  detectedAt: number;
  /** The requests in flight that it ended (each failed with `error`). */
  inFlight: number;
  error: RuntimeFault;
}

/**
 * Default heartbeat: a worker silent for this long (beyond what a stage run it announced may take) is lost, ms.
 */
export const DEFAULT_HEARTBEAT_MS = 1000;

/**
 * Silence allowed after a `busy` notice without an expected time (a stage's first run, which also warms
 * onnxruntime up), ms (at least 10 heartbeats).
 */
const FIRST_RUN_GRACE_MS = 30000;
/** Silence allowed after a `busy` notice: the heartbeat plus this many times the stage's recent run time. */
const BUSY_SLACK = 3;

/** How one stage was deployed: its bytes, and the time from announcing it to the worker's `loaded`. */
export interface StageLoad {
  stage: number;
  worker: string;
  /** Bytes sent: the stage file and its external data. */
  bytes: number;
  /** Chunks those bytes travelled in. */
  chunks: number;
  /** Coordinator's time from the announcement to the worker's answer, ms. */
  deployMs: number;
  /** The worker's time receiving and verifying the bytes, ms. */
  receiveMs: number;
  /** The worker's time from the announcement to ready (receive, open the session, reach its peers), ms. */
  loadMs: number;
  /** Where the worker runs it (`cleave worker --runs`; absent from older workers). */
  runs?: "thread" | "inline";
}

/** @internal A worker connection as the pipeline keeps it (made by deploy). */
export interface PipelineLink {
  name: string;
  endpoint: string;
  conn: Connection;
  stages: number[];
  pid: number;
  threads: number;
  /** Stats requests waiting for their reply, by the request's id (the worker answers with the same id). */
  statsWaiters: WaiterMap<number, StatsReplyMsg>;
  undeployWaiter?: () => void;
  /** Set once the worker is lost: nothing more is sent to it. */
  dead?: boolean;
  /** performance.now() of the last frame received from the worker, ms. */
  lastSeen?: number;
  /** Set by a `busy` notice (the worker's thread is in a stage run), cleared by the next frame. */
  busy?: { expectMs?: number };
}

interface Req {
  /** Id of the current attempt (frames carry it; an earlier attempt's late frames find no request). */
  id: number;
  /** Chosen replica per stage position, for the current attempt. */
  path: Replica<PipelineLink>[];
  /** performance.now() when the current attempt was sent, ms. */
  startedAt: number;
  feeds: Tensors;
  outputs: Tensors;
  missing: Set<string>;
  resolve: (o: Tensors) => void;
  reject: (e: Error) => void;
  /** Disarms the request's deadline and abort listener. */
  disarm?: () => void;
  sent: boolean;
  done: boolean;
}

/**
 * A deployed pipeline: stage models loaded on workers, ready for requests. Outputs come back paired
 * with their request; at most `maxInFlight` requests are in flight; every request has a deadline. Each
 * request runs on one replica of every stage, chosen when it is dispatched (see replicas.ts) and carried in
 * its tensor frames' path. Losing a replica whose group has others alive re-dispatches the requests whose
 * path used it (`events` records it); losing the last replica of a group ends every request in flight with
 * an explicit RuntimeFault naming the worker and stage.
 */
export class Pipeline {
  private readonly pending = new Map<number, Req>();
  private readonly waiting: Req[] = [];
  private nextId = 1;
  private nextStatsId = 1;
  private inFlight = 0;
  private brokenErr?: RuntimeFault;
  private closed = false;
  private readonly counters = { sent: 0, completed: 0, failed: 0, replayed: 0 };
  /** Stage positions each model input goes to. */
  private readonly inputRoutes = new Map<string, number[]>();
  /** Stage position that produces each model output. */
  private readonly producer = new Map<string, number>();
  /** Stage number of each stage position (the path's index). */
  private readonly stageNo: number[];
  /** Whether any stage has several replicas: frames carry a path only then. */
  private readonly replicated: boolean;
  /** Stages being loaded, by `worker/stage` (deploy waits on them). */
  readonly loadWaiters = new WaiterMap<string, LoadedMsg>();
  /** @internal Deploy's waiters for a worker's `need` (a stage announced as cached that it does not hold). */
  readonly needWaiters = new Map<string, () => void>();
  /** How each stage was deployed, in stage order, one entry per replica (filled by deploy). */
  readonly stageLoads: StageLoad[] = [];
  /** Replicas lost without breaking the pipeline, in the order noticed. */
  readonly events: ReplicaLossEvent[] = [];
  /** The loss that broke the pipeline, once one did. */
  private breakInfo?: PipelineBreak;
  private readonly breakListeners: Array<(b: PipelineBreak) => void> = [];
  private heartbeat?: NodeJS.Timeout;
  private heartbeatMs = 0;
  /** performance.now() of the previous heartbeat tick, ms. */
  private lastBeat = 0;

  /** @internal Use {@link deploy}. */
  constructor(
    readonly manifest: Manifest,
    private readonly links: Map<string, PipelineLink>,
    private readonly groups: ReplicaGroup<PipelineLink>[],
    /** Most requests in flight at once. */
    readonly maxInFlight: number,
    private readonly timeoutMs: number,
    /** Deployment epoch: stamped on the request frames sent; frames of another epoch are dropped. */
    readonly epoch = 0,
  ) {
    this.stageNo = manifest.stages.map((s, i) => s.index ?? i);
    this.replicated = groups.some((g) => g.replicas.length > 1);
    for (const input of manifest.inputs) {
      const at: number[] = [];
      manifest.stages.forEach((s, i) => {
        if (s.inputs.includes(input.name)) at.push(i);
      });
      this.inputRoutes.set(input.name, at);
    }
    manifest.stages.forEach((s, i) => {
      for (const o of s.outputs) if (!this.producer.has(o)) this.producer.set(o, i);
    });
    for (const link of links.values()) {
      link.lastSeen = performance.now();
      link.conn.onFrame((f) => {
        link.lastSeen = performance.now();
        link.busy = undefined;
        this.onFrame(link, f);
      });
      link.conn.onClose((err) => {
        link.statsWaiters.rejectAll(
          new RuntimeFault(
            "WORKER",
            `worker ${link.name} at ${link.endpoint}: connection lost before its stats came`,
            {
              device: link.name,
            },
          ),
        );
        if (this.closed) return;
        this.lose(link, "closed", `connection lost (${err?.message ?? "closed"})`);
      });
    }
  }

  /** The loss that broke the pipeline (a worker whose stage had no replica left), once one did. */
  get broken(): PipelineBreak | undefined {
    return this.breakInfo;
  }

  /** Calls `fn` once, when a loss breaks the pipeline (after the requests in flight were ended). */
  onBreak(fn: (b: PipelineBreak) => void): void {
    if (this.breakInfo) fn(this.breakInfo);
    else this.breakListeners.push(fn);
  }

  /**
   * Starts the failure detector (deploy calls it once every stage is loaded): every `heartbeatMs / 4` each live
   * worker gets a ping, and one silent for `heartbeatMs` (judged at the tick that would pass it: after 3/4 of
   * it and within it) is lost as `unresponsive`. A worker that
   * announced a stage run (`busy`) may stay silent for `heartbeatMs + 3 x` its recent run time instead
   * (30 s for a first run), since onnxruntime-node's run holds its thread and no pong goes out until it ends.
   */
  startHeartbeat(heartbeatMs: number): void {
    if (!(heartbeatMs > 0) || !Number.isFinite(heartbeatMs))
      throw new ArgumentError(`heartbeat: ${heartbeatMs} ms is not a positive number of ms`, {
        field: "heartbeatMs",
      });
    clearInterval(this.heartbeat);
    this.heartbeatMs = heartbeatMs;
    const now = performance.now();
    this.lastBeat = now;
    for (const l of this.links.values()) l.lastSeen = Math.max(l.lastSeen ?? now, now);
    this.heartbeat = setInterval(() => this.beat(), Math.max(1, heartbeatMs / 4));
    this.heartbeat.unref();
  }

  /** One heartbeat tick: loses every silent worker, pings the rest. */
  private beat(): void {
    if (this.closed || this.breakInfo) {
      clearInterval(this.heartbeat);
      return;
    }
    const now = performance.now();
    // This process's own thread was held (a run of the whole model here, a long synchronous step): timers run
    // before the frames that waited, and no pings went out, so silence is not the workers'. Count it from now.
    const interval = Math.max(1, this.heartbeatMs / 4);
    const stalled = now - this.lastBeat > 2 * interval + 10;
    this.lastBeat = now;
    for (const l of this.links.values()) {
      if (l.dead === true || l.conn.closed) continue;
      if (stalled) l.lastSeen = Math.max(l.lastSeen ?? now, now);
      const silent = now - (l.lastSeen ?? now);
      const allowed =
        l.busy === undefined
          ? this.heartbeatMs
          : l.busy.expectMs === undefined
            ? Math.max(FIRST_RUN_GRACE_MS, 10 * this.heartbeatMs)
            : this.heartbeatMs + BUSY_SLACK * l.busy.expectMs;
      // Judged a tick early, so a silent worker is lost within `allowed` (not up to a tick after it).
      if (silent > allowed - interval) {
        this.lose(
          l,
          "unresponsive",
          `no answer for ${Math.round(silent)} ms (heartbeat ${this.heartbeatMs} ms${l.busy ? ", in a stage run" : ""})`,
        );
        l.conn.close();
        continue;
      }
      l.conn.send({ type: "control", requestId: 0, msg: { t: "ping" } }).catch(() => {});
    }
  }

  /** Model inputs the pipeline expects (name, dtype, shape). */
  get inputs(): TensorSpec[] {
    return this.manifest.inputs;
  }

  /**
   * Runs one request through the pipeline. Feeds are checked against the manifest's inputs (names,
   * dtype, shape) before anything is sent. Rejects with a RuntimeFault naming the worker and stage when a
   * stage fails, the deadline passes, the signal aborts, or the last replica of a stage is lost.
   */
  infer(feeds: Tensors, opts: InferOptions = {}): Promise<Tensors> {
    try {
      this.validate(feeds);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closed) return Promise.reject(new RuntimeFault("RUNTIME", "pipeline is closed"));
    if (this.brokenErr) return Promise.reject(this.brokenErr);
    return new Promise<Tensors>((resolve, reject) => {
      const req: Req = {
        id: 0,
        path: [],
        startedAt: 0,
        feeds,
        outputs: {},
        missing: new Set(this.manifest.outputs.map((o) => o.name)),
        resolve,
        reject,
        sent: false,
        done: false,
      };
      const deadline = opts.deadlineMs ?? this.timeoutMs;
      req.disarm = armDeadline(
        deadline,
        (cause) =>
          this.finish(
            req,
            cause.kind === "deadline"
              ? this.deadlineError(req, deadline)
              : new RuntimeFault("RUNTIME", `request ${req.id}: aborted (${errorMessage(cause.reason)})`),
          ),
        opts.signal,
      );
      if (req.done) return;
      if (this.inFlight < this.maxInFlight) this.start(req);
      else this.waiting.push(req);
    });
  }

  /**
   * Runs many requests with `inFlight` of them outstanding at a time (capped by maxInFlight) and
   * reports throughput and latency percentiles. `requests` is a list of feeds, or a count and a
   * function making the feeds of request i. Failed requests are counted, never thrown. Outputs are kept by
   * request index, whatever order the replicas answer in.
   */
  async runMany(requests: RunRequests, opts: RunManyOptions = {}): Promise<RunReport> {
    return runRequests(
      (feeds, o) => this.infer(feeds, o),
      this.maxInFlight,
      requests,
      opts,
      () => this.brokenErr !== undefined,
    );
  }

  /** Counters since deploy. */
  stats(): PipelineStats {
    let bytesSent = 0;
    let bytesReceived = 0;
    for (const l of this.links.values()) {
      bytesSent += l.conn.bytesSent;
      bytesReceived += l.conn.bytesReceived;
    }
    return {
      sent: this.counters.sent,
      completed: this.counters.completed,
      failed: this.counters.failed,
      inFlight: this.inFlight,
      waiting: this.waiting.length,
      bytesSent,
      bytesReceived,
      workers: [...this.links.values()].map((l) => ({
        name: l.name,
        endpoint: l.endpoint,
        stages: l.stages,
        pid: l.pid,
        threads: l.threads,
        alive: l.dead !== true,
      })),
      stages: this.groups.map((g) => ({ stage: g.stage, replicas: g.replicas.map((r) => r.stats()) })),
      replayed: this.counters.replayed,
    };
  }

  /**
   * Per-stage counters from every worker still alive (runs, errors, time in onnxruntime). Each request has its
   * own id, which the worker's reply carries, so a reply that comes after its request timed out is dropped
   * rather than taken for a later request's.
   */
  async workerStats(timeoutMs = 5000): Promise<StatsReplyMsg[]> {
    return Promise.all(
      [...this.links.values()]
        .filter((l) => l.dead !== true)
        .map((l) => {
          const id = this.nextStatsId;
          this.nextStatsId = this.nextStatsId >= 0xfffffffe ? 1 : this.nextStatsId + 1;
          const w = l.statsWaiters.add(id, {
            ms: timeoutMs,
            timeout: () =>
              new RuntimeFault(
                "WORKER",
                `worker ${l.name} at ${l.endpoint}: no stats within ${timeoutMs} ms`,
                {
                  device: l.name,
                },
              ),
          });
          l.conn.send({ type: "control", requestId: id, msg: { t: "stats" } }).catch((err) => w.reject(err));
          return w.promise;
        }),
    );
  }

  /**
   * Ends every request still in flight with an error, asks each worker to drop its stages (waiting up to
   * 2 s for the acknowledgement, so the workers are free for the next deploy) and closes the connections.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    const err = new RuntimeFault("RUNTIME", "pipeline closed");
    for (const r of [...this.pending.values(), ...this.waiting]) this.finish(r, err);
    await Promise.all(
      [...this.links.values()].map(async (l) => {
        // A lost worker is not waited for: a hung one would hold the close for the whole 2 s.
        if (!l.conn.closed && l.dead !== true) {
          // Waits up to 2 s for the acknowledgement, then closes anyway.
          const acked = waiter<void>({ ms: 2000, timeout: () => new Error("no undeploy acknowledgement") });
          l.undeployWaiter = () => acked.resolve();
          await l.conn.send({ type: "control", requestId: 0, msg: { t: "undeploy" } }).then(
            () => acked.promise.catch(() => {}),
            () => acked.reject(new Error("not sent")),
          );
        }
        l.conn.close();
      }),
    );
  }

  private validate(feeds: Tensors): void {
    for (const spec of this.manifest.inputs) {
      const t = feeds[spec.name];
      if (t === undefined)
        throw new ArgumentError(
          `input '${spec.name}' is missing (the model takes ${this.manifest.inputs.map((i) => i.name).join(", ")})`,
          {
            tensor: spec.name,
          },
        );
      const dims = t.dims.map(Number);
      if (
        t.type !== spec.dtype ||
        dims.length !== spec.shape.length ||
        spec.shape.some((d, i) => d >= 0 && d !== dims[i])
      )
        throw new ArgumentError(
          `input '${spec.name}' is ${t.type} [${dims}], the model takes ${spec.dtype} [${spec.shape}]`,
          { tensor: spec.name },
        );
    }
    for (const name of Object.keys(feeds))
      if (!this.inputRoutes.has(name))
        throw new ArgumentError(
          `input '${name}' is not an input of the model (it takes ${[...this.inputRoutes.keys()].join(", ")})`,
          {
            tensor: name,
          },
        );
  }

  private start(req: Req): void {
    if (req.done) return;
    this.inFlight++;
    req.sent = true;
    this.counters.sent++;
    this.send(req);
  }

  /** Sends one attempt of a request: a fresh id, one live replica per stage, the inputs to those replicas. */
  private send(req: Req): void {
    req.id = this.nextId;
    this.nextId = this.nextId >= 0xfffffffe ? 1 : this.nextId + 1;
    req.path = this.groups.map((g) => g.pick()!);
    req.startedAt = performance.now();
    for (const r of req.path) r.dispatch();
    this.pending.set(req.id, req);
    let path: Uint8Array | undefined;
    if (this.replicated) {
      path = new Uint8Array(Math.max(...this.stageNo) + 1);
      req.path.forEach((r, i) => {
        path![this.stageNo[i]] = r.index;
      });
    }
    const id = req.id;
    for (const [name, at] of this.inputRoutes) {
      const frame = tensorFrame(id, name, req.feeds[name]);
      if (path) frame.path = path;
      frame.epoch = this.epoch;
      const to = new Set(at.map((i) => req.path[i].link));
      for (const l of to)
        l.conn.send(frame).catch((err) => {
          // A lost connection is handled as a loss (the request runs again elsewhere when it can).
          if (l.conn.closed) this.lose(l, "closed", `connection lost (${errorMessage(err)})`);
          else if (req.id === id)
            this.finish(
              req,
              new RuntimeFault(
                "WORKER",
                `worker ${l.name} (stage ${l.stages.join(",")}) at ${l.endpoint}: cannot send input '${name}' of request ${id}: ${errorMessage(err)}`,
                { device: l.name, stage: l.stages[0] },
              ),
            );
        });
    }
  }

  /** Ends the current attempt's hold on its replicas. */
  private release(req: Req, completed: boolean): void {
    const now = performance.now();
    for (const r of req.path) r.end(completed, req.startedAt, now);
    req.path = [];
  }

  /** Drops what the workers hold of request attempt `id`. */
  private cancel(id: number): void {
    for (const l of this.links.values())
      if (l.dead !== true && !l.conn.closed)
        l.conn
          .send({ type: "control", requestId: id, epoch: this.epoch, msg: { t: "cancel" } })
          .catch(() => {});
  }

  private finish(req: Req, err?: Error): void {
    if (req.done) return;
    req.done = true;
    req.disarm?.();
    if (req.sent) {
      this.pending.delete(req.id);
      this.inFlight--;
      this.release(req, err === undefined);
      if (err && !this.closed && !this.brokenErr) this.cancel(req.id);
    } else {
      const i = this.waiting.indexOf(req);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    if (err) {
      this.counters.failed++;
      req.reject(err);
    } else {
      this.counters.completed++;
      req.resolve(req.outputs);
    }
    if (this.brokenErr || this.closed) return;
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) this.start(this.waiting.shift()!);
  }

  /**
   * A worker is lost. When every stage it runs has another live replica, the requests whose path used it are
   * sent again (new attempt ids; the old attempts are cancelled on the other workers, and their late frames
   * match no request, so none is answered twice). Otherwise the pipeline fails as a whole.
   */
  private lose(link: PipelineLink, cause: ReplicaLossEvent["cause"], why: string): void {
    if (link.dead || this.brokenErr || this.closed) return;
    link.dead = true;
    const mine = this.groups.flatMap((g) => g.replicas.filter((r) => r.link === link));
    for (const r of mine) r.alive = false;
    const emptied = this.groups.find((g) => g.alive.length === 0);
    if (emptied) {
      const replicated = emptied.replicas.length > 1;
      const error = new RuntimeFault(
        "WORKER",
        `worker ${link.name} (stage ${link.stages.join(",")}) at ${link.endpoint}: ${why}${replicated ? `; no replica of stage ${emptied.stage} is left` : ""}`,
        { device: link.name, stage: replicated ? emptied.stage : link.stages[0] },
      );
      this.breakInfo = {
        cause,
        device: link.name,
        endpoint: link.endpoint,
        stages: [...link.stages],
        message: why,
        lastSeenAt: link.lastSeen ?? performance.now(),
        detectedAt: performance.now(),
        inFlight: this.pending.size,
        error,
      };
      this.fail(error);
      for (const fn of this.breakListeners.splice(0)) fn(this.breakInfo);
      return;
    }
    const hit = [...this.pending.values()].filter((q) => q.path.some((r) => r.link === link));
    for (const q of hit) {
      this.pending.delete(q.id);
      this.release(q, false);
      this.cancel(q.id);
      q.outputs = {};
      q.missing = new Set(this.manifest.outputs.map((o) => o.name));
      this.counters.replayed++;
      this.send(q);
    }
    const event: ReplicaLossEvent = {
      cause,
      device: link.name,
      stages: mine.map((r) => r.stage),
      replayed: hit.length,
      message: why,
      atMs: performance.now(),
    };
    this.events.push(event);
    log(
      `lost replica ${link.name} (stage ${event.stages.join(",")}): ${why}; ${hit.length} request(s) sent again`,
    );
  }

  private deadlineError(req: Req, ms: number): RuntimeFault {
    const missing = [...req.missing];
    const workerOf = (s: number) => req.path[s]?.device ?? this.groups[s]?.replicas[0]?.device ?? "?";
    const where = missing.map((o) => {
      const s = this.producer.get(o) ?? -1;
      return `'${o}' from stage ${s} on worker ${workerOf(s)}`;
    });
    const first = this.producer.get(missing[0]) ?? -1;
    return new RuntimeFault(
      "RUNTIME",
      req.sent
        ? `request ${req.id}: no result within the deadline of ${ms} ms (waiting for ${where.join(", ")})`
        : `request ${req.id}: the deadline of ${ms} ms passed while waiting for an in-flight slot`,
      { stage: first, device: first >= 0 ? workerOf(first) : undefined },
    );
  }

  /** Ends every pending and waiting request with `err`; the pipeline refuses new requests from now on. */
  private fail(err: RuntimeFault): void {
    if (this.brokenErr) return;
    this.brokenErr = err;
    log(`pipeline broken: ${err.message}`);
    this.loadWaiters.rejectAll(err);
    for (const r of [...this.pending.values(), ...this.waiting]) this.finish(r, err);
  }

  private onFrame(link: PipelineLink, f: Frame): void {
    // A request's frames from another deployment are not this one's (replies to pings, stats and undeploy carry
    // no epoch and are taken; stats replies are matched to their request by id).
    const stale = (f.epoch ?? 0) !== this.epoch;
    if (f.type === "tensor") {
      if (stale) return;
      const req = this.pending.get(f.requestId);
      if (!req?.missing.has(f.name)) return;
      req.outputs[f.name] = frameTensor(f);
      req.missing.delete(f.name);
      if (req.missing.size === 0) this.finish(req);
      return;
    }
    const m = f.msg;
    if (m.t === "error") {
      const e = m as unknown as ErrorMsg;
      if (stale) return;
      const err = new RuntimeFault(
        e.kind === "load" ? "WORKER" : "RUNTIME",
        e.kind === "load"
          ? `worker ${e.worker} at ${link.endpoint}: stage ${e.stage} failed to load: ${e.message}`
          : `worker ${e.worker} (stage ${e.stage}): request ${f.requestId} failed: ${e.message}`,
        { device: e.worker, stage: e.stage },
      );
      if (e.kind === "load") {
        if (!this.loadWaiters.reject(`${link.name}/${e.stage}`, err)) this.fail(err);
        return;
      }
      const req = this.pending.get(f.requestId);
      if (!req) return;
      // A worker could not send to a replica: lose it when its stages have others, and the request runs again.
      // When it was the only replica, the pipeline breaks, and a control loop above runs the request again.
      const target = e.unreachable !== undefined ? this.links.get(e.unreachable) : undefined;
      if (target && target.dead !== true) {
        this.lose(target, "unreachable", `worker ${e.worker}: ${e.message}`);
        return;
      }
      this.finish(req, err);
    } else if (m.t === "need") {
      this.needWaiters.get(`${link.name}/${m.stage as number}`)?.();
    } else if (m.t === "busy") {
      const expectMs = (m as unknown as BusyMsg).expectMs;
      link.busy = typeof expectMs === "number" && expectMs >= 0 ? { expectMs } : {};
    } else if (m.t === "loaded") {
      this.loadWaiters.resolve(`${link.name}/${m.stage as number}`, m as unknown as LoadedMsg);
    } else if (m.t === "undeployed") {
      link.undeployWaiter?.();
    } else if (m.t === "stats-reply") {
      link.statsWaiters.resolve(f.requestId, m as unknown as StatsReplyMsg);
    }
  }
}

/** Requests for {@link Pipeline.runMany}: a list of feeds, or a count and a function making the feeds of request i. */
export type RunRequests = readonly Tensors[] | { count: number; feeds: (i: number) => Tensors };

/** Options of {@link Pipeline.runMany}. */
export interface RunManyOptions {
  /** Requests outstanding at a time (default: the pipeline's maxInFlight). */
  inFlight?: number;
  deadlineMs?: number;
  keepOutputs?: boolean;
  keepLatencies?: boolean;
  /** Called with each completed request's outputs and index (e.g. to check them against a reference). */
  onOutputs?: (outputs: Tensors, index: number) => void;
  signal?: AbortSignal;
}

/**
 * Runs many requests through `infer` with `inFlight` of them outstanding at a time (default `maxInFlight`)
 * and reports throughput and latency percentiles; failed requests are counted, never thrown; outputs are kept
 * by request index. Shared by {@link Pipeline.runMany} and the control loop's. No request is started once
 * `opts.signal` aborted (those in flight end aborted) or `stopped()` says the deployment cannot serve any more,
 * so `completed + failed` counts the requests sent.
 */
export async function runRequests(
  infer: (feeds: Tensors, opts: InferOptions) => Promise<Tensors>,
  maxInFlight: number,
  requests: RunRequests,
  opts: RunManyOptions = {},
  stopped: () => boolean = () => false,
): Promise<RunReport> {
  const count = Array.isArray(requests) ? requests.length : (requests as { count: number }).count;
  const feedsOf = Array.isArray(requests)
    ? (i: number) => requests[i]
    : (requests as { feeds: (i: number) => Tensors }).feeds;
  const outputs: Array<Tensors | undefined> | undefined = opts.keepOutputs ? new Array(count) : undefined;
  const lat: number[] = [];
  const errors: RunReport["errors"] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < count && opts.signal?.aborted !== true && !stopped()) {
      const i = next++;
      const s = performance.now();
      try {
        const out = await infer(feedsOf(i), { deadlineMs: opts.deadlineMs, signal: opts.signal });
        lat.push(performance.now() - s);
        if (outputs) outputs[i] = out;
        opts.onOutputs?.(out, i);
      } catch (err) {
        failed++;
        if (errors.length < 20) errors.push({ index: i, message: errorMessage(err) });
      }
    }
  };
  const lanes = Math.max(1, Math.min(count, opts.inFlight ?? maxInFlight));
  await Promise.all(Array.from({ length: lanes }, lane));
  const wallMs = performance.now() - t0;
  return {
    requests: count,
    completed: lat.length,
    failed,
    errors,
    wallMs,
    throughput: wallMs > 0 ? (lat.length * 1000) / wallMs : 0,
    latencyMs: summarizeLatencies(lat),
    outputs,
    latencySamplesMs: opts.keepLatencies ? lat : undefined,
  };
}
