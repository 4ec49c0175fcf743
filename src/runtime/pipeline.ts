import type { Manifest, TensorSpec } from "../export/manifest.js";
import { ArgumentError, errorMessage, RuntimeFault } from "../errors.js";
import type { ort } from "../onnx/ort.js";
import { type Frame, frameTensor, tensorFrame } from "./frame.js";
import { type LatencySummary, summarizeLatencies } from "./latency.js";
import { logger } from "./log.js";
import type { ErrorMsg, LoadedMsg, StatsReplyMsg } from "./protocol.js";
import type { Connection } from "./transport.js";

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
  workers: Array<{ name: string; endpoint: string; stages: number[]; pid: number; threads: number }>;
}

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
}

/** @internal A worker connection as the pipeline keeps it (made by deploy). */
export interface PipelineLink {
  name: string;
  endpoint: string;
  conn: Connection;
  stages: number[];
  pid: number;
  threads: number;
  statsWaiters: Array<(m: StatsReplyMsg) => void>;
  undeployWaiter?: () => void;
}

interface Req {
  id: number;
  feeds: Tensors;
  outputs: Tensors;
  missing: Set<string>;
  resolve: (o: Tensors) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  cleanup?: () => void;
  sent: boolean;
  done: boolean;
}

/**
 * A deployed pipeline: stage models loaded on workers, ready for requests. Outputs come back paired
 * with their request; at most `maxInFlight` requests are in flight; every request has a deadline; when
 * a worker fails every request in flight ends with an explicit RuntimeFault naming the worker and stage.
 */
export class Pipeline {
  private readonly pending = new Map<number, Req>();
  private readonly waiting: Req[] = [];
  private nextId = 1;
  private inFlight = 0;
  private broken?: RuntimeFault;
  private closed = false;
  private readonly counters = { sent: 0, completed: 0, failed: 0 };
  /** Workers each model input goes to. */
  private readonly inputRoutes = new Map<string, PipelineLink[]>();
  /** Stage that produces each model output. */
  private readonly producer = new Map<string, number>();
  readonly loadWaiters = new Map<string, { resolve: (m: LoadedMsg) => void; reject: (e: Error) => void }>();
  /** How each stage was deployed, in stage order (filled by deploy). */
  readonly stageLoads: StageLoad[] = [];

  /** @internal Use {@link deploy}. */
  constructor(
    readonly manifest: Manifest,
    private readonly links: Map<string, PipelineLink>,
    private readonly stageLink: PipelineLink[],
    private readonly maxInFlight: number,
    private readonly timeoutMs: number,
  ) {
    for (const input of manifest.inputs) {
      const ls = new Set<PipelineLink>();
      manifest.stages.forEach((s, i) => {
        if (s.inputs.includes(input.name)) ls.add(stageLink[i]);
      });
      this.inputRoutes.set(input.name, [...ls]);
    }
    manifest.stages.forEach((s, i) => {
      for (const o of s.outputs) if (!this.producer.has(o)) this.producer.set(o, i);
    });
    for (const link of links.values()) {
      link.conn.onFrame((f) => this.onFrame(link, f));
      link.conn.onClose((err) => {
        if (this.closed) return;
        this.fail(
          new RuntimeFault(
            "WORKER",
            `worker ${link.name} (stage ${link.stages.join(",")}) at ${link.endpoint}: connection lost (${err?.message ?? "closed"})`,
            { device: link.name, stage: link.stages[0] },
          ),
        );
      });
    }
  }

  /** Model inputs the pipeline expects (name, dtype, shape). */
  get inputs(): TensorSpec[] {
    return this.manifest.inputs;
  }

  /**
   * Runs one request through the pipeline. Feeds are checked against the manifest's inputs (names,
   * dtype, shape) before anything is sent. Rejects with a RuntimeFault naming the worker and stage when a
   * stage fails, the deadline passes, the signal aborts, or a worker is lost.
   */
  infer(feeds: Tensors, opts: InferOptions = {}): Promise<Tensors> {
    try {
      this.validate(feeds);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closed) return Promise.reject(new RuntimeFault("RUNTIME", "pipeline is closed"));
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<Tensors>((resolve, reject) => {
      const req: Req = {
        id: this.nextId,
        feeds,
        outputs: {},
        missing: new Set(this.manifest.outputs.map((o) => o.name)),
        resolve,
        reject,
        sent: false,
        done: false,
      };
      this.nextId = this.nextId >= 0xfffffffe ? 1 : this.nextId + 1;
      const deadline = opts.deadlineMs ?? this.timeoutMs;
      req.timer = setTimeout(() => this.finish(req, this.deadlineError(req, deadline)), deadline);
      const signal = opts.signal;
      if (signal) {
        const onAbort = () =>
          this.finish(
            req,
            new RuntimeFault("RUNTIME", `request ${req.id}: aborted (${errorMessage(signal.reason)})`),
          );
        if (signal.aborted) {
          onAbort();
          return;
        }
        signal.addEventListener("abort", onAbort, { once: true });
        req.cleanup = () => signal.removeEventListener("abort", onAbort);
      }
      if (this.inFlight < this.maxInFlight) this.start(req);
      else this.waiting.push(req);
    });
  }

  /**
   * Runs many requests with `inFlight` of them outstanding at a time (capped by maxInFlight) and
   * reports throughput and latency percentiles. `requests` is a list of feeds, or a count and a
   * function making the feeds of request i. Failed requests are counted, never thrown.
   */
  async runMany(
    requests: readonly Tensors[] | { count: number; feeds: (i: number) => Tensors },
    opts: {
      inFlight?: number;
      deadlineMs?: number;
      keepOutputs?: boolean;
      keepLatencies?: boolean;
      signal?: AbortSignal;
    } = {},
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
      while (next < count) {
        const i = next++;
        const s = performance.now();
        try {
          const out = await this.infer(feedsOf(i), { deadlineMs: opts.deadlineMs, signal: opts.signal });
          lat.push(performance.now() - s);
          if (outputs) outputs[i] = out;
        } catch (err) {
          failed++;
          if (errors.length < 20) errors.push({ index: i, message: errorMessage(err) });
        }
      }
    };
    const lanes = Math.max(1, Math.min(count, opts.inFlight ?? this.maxInFlight));
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

  /** Counters since deploy. */
  stats(): PipelineStats {
    let bytesSent = 0;
    let bytesReceived = 0;
    for (const l of this.links.values()) {
      bytesSent += l.conn.bytesSent;
      bytesReceived += l.conn.bytesReceived;
    }
    return {
      ...this.counters,
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
      })),
    };
  }

  /** Per-stage counters from every worker (runs, errors, time in onnxruntime). */
  async workerStats(timeoutMs = 5000): Promise<StatsReplyMsg[]> {
    return Promise.all(
      [...this.links.values()].map(
        (l) =>
          new Promise<StatsReplyMsg>((resolve, reject) => {
            const timer = setTimeout(
              () =>
                reject(
                  new RuntimeFault(
                    "WORKER",
                    `worker ${l.name} at ${l.endpoint}: no stats within ${timeoutMs} ms`,
                  ),
                ),
              timeoutMs,
            );
            l.statsWaiters.push((m) => {
              clearTimeout(timer);
              resolve(m);
            });
            l.conn.send({ type: "control", requestId: 0, msg: { t: "stats" } }).catch((err) => {
              clearTimeout(timer);
              reject(err);
            });
          }),
      ),
    );
  }

  /**
   * Ends every request still in flight with an error, asks each worker to drop its stages (waiting up to
   * 2 s for the acknowledgement, so the workers are free for the next deploy) and closes the connections.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new RuntimeFault("RUNTIME", "pipeline closed");
    for (const r of [...this.pending.values(), ...this.waiting]) this.finish(r, err);
    await Promise.all(
      [...this.links.values()].map(async (l) => {
        if (!l.conn.closed) {
          const acked = new Promise<void>((resolve) => {
            l.undeployWaiter = resolve;
            setTimeout(resolve, 2000).unref();
          });
          await l.conn.send({ type: "control", requestId: 0, msg: { t: "undeploy" } }).then(
            () => acked,
            () => {},
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
    this.pending.set(req.id, req);
    for (const [name, links] of this.inputRoutes) {
      const frame = tensorFrame(req.id, name, req.feeds[name]);
      for (const l of links)
        l.conn
          .send(frame)
          .catch((err) =>
            this.finish(
              req,
              new RuntimeFault(
                "WORKER",
                `worker ${l.name} (stage ${l.stages.join(",")}) at ${l.endpoint}: cannot send input '${name}' of request ${req.id}: ${errorMessage(err)}`,
                { device: l.name, stage: l.stages[0] },
              ),
            ),
          );
    }
  }

  private finish(req: Req, err?: Error): void {
    if (req.done) return;
    req.done = true;
    clearTimeout(req.timer);
    req.cleanup?.();
    if (req.sent) {
      this.pending.delete(req.id);
      this.inFlight--;
      if (err && !this.closed && !this.broken)
        for (const l of this.links.values())
          l.conn.send({ type: "control", requestId: req.id, msg: { t: "cancel" } }).catch(() => {});
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
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) this.start(this.waiting.shift()!);
  }

  private deadlineError(req: Req, ms: number): RuntimeFault {
    const missing = [...req.missing];
    const where = missing.map((o) => {
      const s = this.producer.get(o) ?? -1;
      return `'${o}' from stage ${s} on worker ${this.stageLink[s]?.name ?? "?"}`;
    });
    const first = this.producer.get(missing[0]) ?? -1;
    return new RuntimeFault(
      "RUNTIME",
      req.sent
        ? `request ${req.id}: no result within the deadline of ${ms} ms (waiting for ${where.join(", ")})`
        : `request ${req.id}: the deadline of ${ms} ms passed while waiting for an in-flight slot`,
      { stage: first, device: this.stageLink[first]?.name },
    );
  }

  /** Ends every pending and waiting request with `err`; the pipeline refuses new requests from now on. */
  private fail(err: RuntimeFault): void {
    if (this.broken) return;
    this.broken = err;
    log(`pipeline broken: ${err.message}`);
    for (const w of this.loadWaiters.values()) w.reject(err);
    for (const r of [...this.pending.values(), ...this.waiting]) this.finish(r, err);
  }

  private onFrame(link: PipelineLink, f: Frame): void {
    if (f.type === "tensor") {
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
      const err = new RuntimeFault(
        e.kind === "load" ? "WORKER" : "RUNTIME",
        e.kind === "load"
          ? `worker ${e.worker} at ${link.endpoint}: stage ${e.stage} failed to load: ${e.message}`
          : `worker ${e.worker} (stage ${e.stage}): request ${f.requestId} failed: ${e.message}`,
        { device: e.worker, stage: e.stage },
      );
      if (e.kind === "load") {
        const w = this.loadWaiters.get(`${link.name}/${e.stage}`);
        if (w) w.reject(err);
        else this.fail(err);
        return;
      }
      const req = this.pending.get(f.requestId);
      if (req) this.finish(req, err);
    } else if (m.t === "loaded") {
      this.loadWaiters.get(`${link.name}/${m.stage as number}`)?.resolve(m as unknown as LoadedMsg);
    } else if (m.t === "undeployed") {
      link.undeployWaiter?.();
    } else if (m.t === "stats-reply") {
      link.statsWaiters.shift()?.(m as unknown as StatsReplyMsg);
    }
  }
}
