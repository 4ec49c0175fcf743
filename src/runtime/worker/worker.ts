import { createHash, type Hash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { TensorSpec } from "../../export/manifest.js";
import { ArgumentError, errorMessage } from "../../errors.js";
import { PROTOBUF_LIMIT_BYTES } from "../../onnx/model-io.js";
import type { ort } from "../../onnx/ort.js";
import { VERSION } from "../../version.js";
import { retry } from "../backoff.js";
import {
  type ControlFrame,
  DEFAULT_MAX_FRAME_BYTES,
  type Frame,
  frameTensor,
  type TensorFrame,
  packTensorFrame,
  tensorFrame,
} from "../transport/frame.js";
import { FramePool } from "../transport/frame-pool.js";
import { Admission, type AdmissionLimits } from "../transport/admission.js";
import { CLOSE_NOTICE } from "../transport/connection.js";
import { acceptHandshake, connectWorker, HANDSHAKE_MAX_FRAME_BYTES } from "../transport/handshake.js";
import { logger } from "../log.js";
import {
  checkMessage,
  type ErrorMsg,
  type HelloMsg,
  type LoadChunkMsg,
  type LoadedMsg,
  type LoadMsg,
  PEER_MESSAGE,
  type RejectMsg,
  ROLE_MESSAGES,
  type Role,
  type StageStats,
  type StatsReplyMsg,
} from "../transport/protocol.js";
import { checkLoad, stageExternalData } from "./stage-check.js";
import { StageCache } from "./stage-cache.js";
import { openStage, type RunMode, StageRunError, type StageRunner } from "./stage-runner.js";
import { cpuMs } from "./stage-wire.js";
import type {
  Connection,
  Listener,
  TlsConfig,
  Transport,
  TransportName,
  TransportOptions,
} from "../transport/transport.js";
import { makeTransport } from "../transport/transports.js";

const log = logger("runtime:worker");

/** Options of a worker process (what `cleave worker` parses). */
export interface WorkerOptions {
  /** Name used in every error this worker reports (default "worker"). */
  name?: string;
  /** Address to listen on (default 127.0.0.1) and port (0 picks a free one; default 0). */
  host?: string;
  port?: number;
  /**
   * Shared secret a peer must prove it holds (challenge-response; it never travels) before anything else is
   * accepted; "" or absent accepts any peer, which only a loopback address or `insecure` allows.
   */
  token?: string;
  /** Listen on a non-loopback address without a token (default false: start() refuses). */
  insecure?: boolean;
  /** What is admitted before a peer authenticated: handshake deadline, connection caps, back-off. */
  admission?: AdmissionLimits;
  /** TLS on every connection, to the worker and from it to other workers (tcp only; default none). */
  tls?: TlsConfig;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
  /** Transport to listen with (default "tcp"). */
  transport?: TransportName;
  /** Largest frame accepted or sent, bytes. */
  maxFrameBytes?: number;
  /** Reuse the buffers stage inputs are received into (default true; false only to measure the difference). */
  receivePool?: boolean;
  /** Version this worker announces and requires of peers (default VERSION; other values only for tests). */
  version?: string;
  /** Stage files kept after loading, for a later deploy of the same stage (default 4 entries, 1 GiB). */
  stageCache?: { entries?: number; bytes?: number };
  /**
   * Where stages run: "thread", each on a thread of its own, so frames are read, relayed and answered while a
   * stage runs and the worker's stages run at the same time; "inline", on the I/O thread, one run at a time
   * across the worker; "auto" (default), on threads when the worker runs more than one stage of a deployment,
   * inline when it runs one (no hop through a thread; see bench/run-mode.ts).
   */
  runs?: RunMode;
}

/**
 * A run expected to take at least this long (its stage's recent runs did), ms, is announced to the coordinator
 * with a `busy` notice first: a shorter one delays a pong by less than any heartbeat worth setting.
 */
const BUSY_NOTICE_MS = 5;
/** Recent run times kept per stage for the `busy` notice's expectation. */
const RECENT_RUNS = 8;

/** Bytes of output sends a stage may leave unfinished before it waits (backpressure toward downstream). */
const MAX_UNSENT_REQUESTS = 4;
/** Cancelled request ids remembered, so late tensors of a cancelled request are dropped. */
const CANCEL_MEMORY = 4096;
/** Requests a stage may hold partial inputs for; one more fails (the coordinator keeps far fewer in flight). */
const MAX_PENDING_REQUESTS = 256;
/** Queued stage runs at which the worker stops reading tensors from its peers, and at which it resumes. */
const QUEUE_PAUSE_AT = 64;
const QUEUE_RESUME_AT = 16;
/** Stages being received at once, per deployment. */
const MAX_INCOMING_STAGES = 16;

/** Runs served one at a time, in order: a stage's own (thread mode) or the whole worker's (inline). */
interface Lane {
  queue: Job[];
  running: boolean;
}

interface Stage {
  load: LoadMsg;
  /** This worker's index in the stage's replica group. */
  replica: number;
  runner: StageRunner;
  lane: Lane;
  specs: Map<string, TensorSpec>;
  pending: Map<number, PendingInputs>;
  stats: StageStats;
  /** Wall times of the last RECENT_RUNS runs, ms. */
  recentMs: number[];
}

/** The inputs of one request received so far, and the request's path (from its first tensor). */
interface PendingInputs {
  got: Map<string, ort.Tensor>;
  path?: Uint8Array;
}

/** A stage announced by `load` whose chunks are still arriving. */
interface Incoming {
  load: LoadMsg;
  /** performance.now() at the announcement. */
  t0: number;
  /** The stage file, filled chunk by chunk. */
  model: Buffer;
  modelHash: Hash;
  modelFilled: number;
  /** External data: written to `dir` (a fresh temp folder) as it arrives. */
  dir?: string;
  dataFd?: number;
  dataHash?: Hash;
  dataFilled: number;
  /** Set when the model came from the stage cache (its sha256 is known: it was checked when it was kept). */
  cachedSha?: string;
}

interface Deployment {
  id: string;
  coordinator: Connection;
  /** The name the coordinator gave this worker. */
  name: string;
  stages: Map<number, Stage>;
  /** Stages being received, by stage number. */
  incoming: Map<number, Incoming>;
  peers: Map<string, Promise<Connection>>;
  /** The deployment's workers by name, endpoint (from its loads): the only peers tensors are taken from. */
  workers: Map<string, string>;
  /** The coordinator's epoch for this deployment, stamped on every frame sent for it. */
  epoch: number;
  /** Cancelled request ids of this deployment (ids are the coordinator's, per deployment). */
  cancelled: Set<number>;
}

/**
 * Deployments a worker holds at once, each from its own coordinator connection: two, so a coordinator can
 * deploy a new split beside the one running and cut over once it is ready (a third is refused as busy).
 */
export const MAX_DEPLOYMENTS = 2;

interface Job {
  deployment: Deployment;
  stage: Stage;
  requestId: number;
  feeds: Record<string, ort.Tensor>;
  /** The request's replica per stage (see TensorFrame.path), given to its outputs. */
  path?: Uint8Array;
}

/** Whether a listen address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\./.test(h) || /^::ffff:127\./.test(h);
}

function firstLine(s: string): string {
  const line = s.split("\n").find((l) => l.trim() !== "") ?? s;
  return line.length > 300 ? `${line.slice(0, 300)}...` : line.trim();
}

function shapeMatches(spec: readonly number[], shape: readonly number[]): boolean {
  // A negative dimension in the manifest is dynamic and matches any size.
  return spec.length === shape.length && spec.every((d, i) => d < 0 || d === shape[i]);
}

/**
 * A cleave worker: listens for a coordinator, accepts stage models (streamed in chunks, sha256 checked once
 * all arrived, kept in memory; a stage with external data is written to a temp folder just long enough for
 * onnxruntime to open it),
 * runs each request once all its inputs arrived (from the coordinator and/or upstream workers), and sends
 * each output straight to the stages that read it or back to the coordinator. A failing request becomes
 * an error frame for the coordinator naming this worker and the stage; the worker keeps serving.
 * Nothing is accepted from a peer before it proved it holds the token (handshake.ts), and until then its
 * frames are capped at HANDSHAKE_MAX_FRAME_BYTES and its connection is bounded by {@link Admission}. After it,
 * every control message is checked against its schema and its sender's role; a bad one closes that
 * connection only.
 */
export class Worker {
  readonly name: string;
  private readonly opts: WorkerOptions;
  private readonly transport: Transport;
  private readonly version: string;
  private listener?: Listener;
  /** Deployments by their coordinator's connection (at most MAX_DEPLOYMENTS). */
  private readonly deployments = new Map<Connection, Deployment>();
  /** Every lane with queued or running jobs' stages (inline mode: the one shared lane). */
  private readonly lanes = new Set<Lane>();
  /** The lane of the stages that run inline: one run at a time, on the I/O thread. */
  private readonly sharedLane: Lane = { queue: [], running: false };
  private readonly unsent: Promise<unknown>[] = [];
  /** Buffers the stage inputs are received into, handed back once the stage has run on them. */
  private readonly pool: FramePool;
  private readonly admission: Admission;
  /** Bytes of stage inputs held while the rest of their request is awaited (8 frames, at least 1 GiB). */
  private readonly maxPendingBytes: number;
  /** Connections not read from while the run queue is long, and how often one was paused. */
  private readonly paused = new Set<Connection>();
  private readsPaused = 0;
  private readonly cache: StageCache;

  constructor(opts: WorkerOptions = {}) {
    this.opts = opts;
    this.name = opts.name ?? "worker";
    this.version = opts.version ?? VERSION;
    // A pool that pools nothing (minimum size above any frame) when reuse is off.
    this.pool = opts.receivePool === false ? new FramePool(Number.POSITIVE_INFINITY) : new FramePool();
    const t: TransportOptions = {
      maxFrameBytes: opts.maxFrameBytes,
      receivePool: this.pool,
      tls: opts.tls,
      // The admission counts authenticated and pending connections; this also bounds those in a TLS handshake.
      maxConnections: (opts.admission?.maxConnections ?? 512) + (opts.admission?.maxPending ?? 64),
    };
    this.transport = makeTransport(opts.transport ?? "tcp", t);
    this.admission = new Admission(opts.admission);
    this.maxPendingBytes = Math.max(2 ** 30, 8 * (opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES));
    this.cache = new StageCache(opts.stageCache?.entries ?? 4, opts.stageCache?.bytes ?? 2 ** 30);
    this.lanes.add(this.sharedLane);
  }

  /** Stage runs queued, all stages together. */
  private queued(): number {
    let n = 0;
    for (const l of this.lanes) n += l.queue.length;
    return n;
  }

  /**
   * Starts listening; resolves to the address really listened on. Throws an ArgumentError for a non-loopback
   * address without a token, unless `insecure`.
   */
  async start(): Promise<{ host: string; port: number }> {
    const host = this.opts.host ?? "127.0.0.1";
    if ((this.opts.token ?? "") === "" && !isLoopback(host) && this.opts.insecure !== true)
      throw new ArgumentError(
        `worker ${this.name}: refusing to listen on ${host} without a token (anyone who can reach it could run code on it); give --token, --token-file or CLEAVE_TOKEN, or --insecure on a network you trust`,
        { field: "token" },
      );
    this.listener = await this.transport.listen(this.opts.host ?? "127.0.0.1", this.opts.port ?? 0, (c) =>
      this.accept(c),
    );
    return { host: this.listener.host, port: this.listener.port };
  }

  /** The address listened on (after start). */
  get address(): { host: string; port: number } | undefined {
    return this.listener ? { host: this.listener.host, port: this.listener.port } : undefined;
  }

  /**
   * The counters a coordinator's `stats` request gets: per stage of its deployment (`conn`'s; default: the
   * newest), and the process's CPU time.
   */
  stats(conn?: Connection): StatsReplyMsg {
    const d = conn !== undefined ? this.deployments.get(conn) : [...this.deployments.values()].at(-1);
    return {
      t: "stats-reply",
      worker: d?.name ?? this.name,
      stages: [...(d?.stages.values() ?? [])].map((s) => ({
        ...s.stats,
        pending: s.pending.size,
      })),
      cpuMs: cpuMs(),
      receiveBuffersReused: this.pool.reused,
      readsPaused: this.readsPaused,
    };
  }

  /** Stops listening, closes every connection and releases the sessions. */
  async stop(): Promise<void> {
    const released = [...this.deployments.values()].flatMap((d) => this.teardown(d));
    await Promise.all(released);
    await this.listener?.close();
    this.listener = undefined;
  }

  private accept(conn: Connection): void {
    const a = this.admission;
    const may = a.mayTry(conn);
    if (!may.ok) {
      // An address backing off is answered at once, before anything is read, parsed or counted: a throttled
      // attempt costs this worker an accept and one small write.
      const m: RejectMsg = { t: "reject", reason: "busy", message: may.message, version: this.version };
      conn.send({ type: "control", requestId: 0, msg: { ...m } }).then(
        () => setTimeout(() => conn.close(), 50),
        () => conn.close(),
      );
      return;
    }
    if (!a.arrive(conn, log)) {
      log(`refused ${conn.remote}: ${a.counts.total} connections open`);
      return;
    }
    // Until it authenticated, a peer can make this worker hold a few KiB, not a frame of the configured size.
    const limit = conn.frameLimit;
    conn.frameLimit = Math.min(limit, HANDSHAKE_MAX_FRAME_BYTES);
    let peer: HelloMsg | undefined;
    conn.onClose((err) => {
      a.closed(conn);
      this.paused.delete(conn);
      if (peer !== undefined) log(`${peer.role} ${conn.remote} closed${err ? `: ${err.message}` : ""}`);
      const d = this.deployments.get(conn);
      if (d) this.teardown(d);
    });
    acceptHandshake(conn, {
      token: this.opts.token ?? "",
      version: this.version,
      mayTry: () => a.mayTry(conn),
      onWrongToken: () => a.wrongToken(conn),
      admit: (h) => {
        const others = [...this.deployments.values()].filter(
          (d) => d.coordinator !== conn && !d.coordinator.closed,
        );
        if (h.role === "coordinator" && others.length >= MAX_DEPLOYMENTS)
          return {
            reason: "busy",
            message: `${others.length} deployments held (stage(s) ${others.map((d) => [...d.stages.keys()].join(",")).join(" and ")}) by other coordinators`,
          };
        return undefined;
      },
      welcome: () => ({
        t: "welcome",
        version: this.version,
        name: this.name,
        threads: this.opts.threads ?? 1,
        pid: process.pid,
        maxFrameBytes: this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      }),
      done: (r) => {
        if ("refused" in r) {
          log(`rejected ${conn.remote}: ${r.refused}`);
          return;
        }
        const h = r.hello;
        peer = h;
        a.authenticated(conn);
        conn.frameLimit = limit;
        log(`accepted ${h.role} ${h.from} from ${conn.remote}`);
        conn.onFrame((f) => {
          try {
            this.handle(conn, h, f);
          } catch (err) {
            log(`frame from ${conn.remote} failed: ${errorMessage(err)}`);
          }
        });
      },
    });
  }

  /** Closes a connection that broke the protocol, with one log line saying how. */
  private expel(conn: Connection, who: HelloMsg, why: string): void {
    log(`closed ${who.role} ${who.from.slice(0, 64)} at ${conn.remote}: ${why}`);
    // Nothing more is read from it; the peer learns why (a close notice) before the connection closes.
    conn.onFrame(() => {});
    conn.pause();
    const message = `worker ${this.name} closed the connection: ${why}`;
    conn.send({ type: "control", requestId: 0, msg: { t: CLOSE_NOTICE, message } }).then(
      () => setTimeout(() => conn.close(), 50),
      () => conn.close(),
    );
  }

  private handle(conn: Connection, peer: HelloMsg, f: Frame): void {
    const role: Role = peer.role;
    if (f.type === "tensor") {
      if (role === "probe") {
        this.expel(conn, peer, `sent tensor '${f.name.slice(0, 64)}' as a probe`);
        return;
      }
      if (this.deployments.size === 0) return;
      // Tensors come from a deployment's coordinator, or from a worker the deployment names.
      const d =
        role === "coordinator"
          ? this.deployments.get(conn)
          : [...this.deployments.values()].find((x) => x.id === peer.deployment);
      if (role === "coordinator" && !d) {
        this.expel(conn, peer, "sent a tensor for a deployment it did not make");
        return;
      }
      if (!d || (role === "peer" && !d.workers.has(peer.from))) {
        this.expel(conn, peer, "sent a tensor as a worker this deployment does not name");
        return;
      }
      this.dispatch(d, f);
      this.throttle(conn);
      return;
    }
    const checked = checkMessage(PEER_MESSAGE, f.msg);
    if (!checked.ok) {
      this.expel(conn, peer, `malformed ${checked.why}`);
      return;
    }
    const msg = checked.msg;
    if (!ROLE_MESSAGES[role].has(msg.t)) {
      this.expel(conn, peer, `'${msg.t}' is not allowed for a ${role}`);
      return;
    }
    const reply = (msg: ControlFrame["msg"]) =>
      conn.send({ type: "control", requestId: f.requestId, msg }).catch(() => {});
    switch (msg.t) {
      case "ping":
        void reply({ t: "pong" });
        return;
      case "sink":
        return;
      case "cancel": {
        const d = this.deployments.get(conn);
        if (d) this.cancel(d, f.requestId);
        return;
      }
      case "stats":
        void reply({ ...this.stats(conn) });
        return;
      case "undeploy": {
        const d = this.deployments.get(conn);
        if (d) this.teardown(d);
        void reply({ t: "undeployed" });
        return;
      }
      case "load": {
        const bad = checkLoad(msg as LoadMsg);
        if (bad !== undefined) {
          this.expel(conn, peer, `load: ${bad}`);
          return;
        }
        this.announce(conn, msg as LoadMsg);
        return;
      }
      case "load-chunk":
        this.chunk(conn, msg as LoadChunkMsg, f.payload ?? new Uint8Array(0));
        return;
    }
  }

  /** Stops reading from `conn` while the run queue is long (resumed by pump() once it drained). */
  private throttle(conn: Connection): void {
    if (this.queued() < QUEUE_PAUSE_AT || this.paused.has(conn)) return;
    this.paused.add(conn);
    this.readsPaused++;
    conn.pause();
  }

  private resumeReading(): void {
    if (this.paused.size === 0 || this.queued() > QUEUE_RESUME_AT) return;
    for (const c of this.paused) c.resume();
    this.paused.clear();
  }

  /** Sends a load error for stage `m.stage` to `conn`. */
  private loadFailed(conn: Connection, m: Pick<LoadMsg, "worker" | "stage">, message: string): Promise<void> {
    log(`stage ${m.stage} failed to load: ${message}`);
    return conn
      .send({
        type: "control",
        requestId: 0,
        epoch: this.deployments.get(conn)?.epoch ?? 0,
        msg: { t: "error", kind: "load", worker: m.worker, stage: m.stage, message },
      })
      .catch(() => {});
  }

  /** A stage announced: makes room for its bytes; its chunks follow. */
  private announce(conn: Connection, m: LoadMsg): void {
    let d = this.deployments.get(conn);
    if (!d || d.id !== m.deployment) {
      if (d) this.teardown(d);
      d = {
        id: m.deployment,
        coordinator: conn,
        name: m.worker,
        stages: new Map(),
        incoming: new Map(),
        peers: new Map(),
        workers: new Map(),
        epoch: m.epoch ?? 0,
        cancelled: new Set(),
      };
      this.deployments.set(conn, d);
    }
    for (const w of m.workers) d.workers.set(w.worker, w.endpoint);
    const old = d.incoming.get(m.stage);
    if (old) discardIncoming(old);
    d.incoming.delete(m.stage);
    if (d.incoming.size >= MAX_INCOMING_STAGES) {
      void this.loadFailed(conn, m, `${m.file}: ${MAX_INCOMING_STAGES} stages are already being received`);
      return;
    }
    const cpus = availableParallelism();
    if (m.threads !== undefined && m.threads > cpus) {
      void this.loadFailed(
        conn,
        m,
        `${m.file}: threads ${m.threads} is more than this worker's ${cpus} CPUs`,
      );
      return;
    }
    const size = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
    if (!size(m.bytes) || (m.data !== undefined && !size(m.data.bytes))) {
      void this.loadFailed(conn, m, `${m.file}: the announcement gives no valid length`);
      return;
    }
    if (m.bytes > PROTOBUF_LIMIT_BYTES) {
      void this.loadFailed(
        conn,
        m,
        `${m.file}: ${m.bytes} bytes is over protobuf's limit of ${PROTOBUF_LIMIT_BYTES} (write its weights as external data)`,
      );
      return;
    }
    const inc: Incoming = {
      load: m,
      t0: performance.now(),
      model: Buffer.allocUnsafeSlow(m.bytes),
      modelHash: createHash("sha256"),
      modelFilled: 0,
      dataFilled: 0,
    };
    if (m.data) {
      // The model names its data file as a location beside it: only a plain file name is accepted.
      if (basename(m.data.file) !== m.data.file || basename(m.file) !== m.file || m.data.file === m.file) {
        void this.loadFailed(
          conn,
          m,
          `${m.file}: external data file '${m.data.file}' is not a plain file name`,
        );
        return;
      }
      try {
        inc.dir = mkdtempSync(join(tmpdir(), "cleave-worker-"));
        keepUntilExit(inc.dir);
        inc.dataFd = openSync(join(inc.dir, m.data.file), "w");
      } catch (err) {
        discardIncoming(inc);
        void this.loadFailed(conn, m, `${m.file}: cannot store its external data (${errorMessage(err)})`);
        return;
      }
      inc.dataHash = createHash("sha256");
    }
    if (m.cached === true) {
      const kept = m.data === undefined ? this.cache.get(m.sha256) : undefined;
      if (kept !== undefined && kept.byteLength === m.bytes) {
        inc.model = Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength);
        inc.modelFilled = m.bytes;
        inc.cachedSha = m.sha256;
      } else {
        conn
          .send({ type: "control", requestId: 0, epoch: d.epoch, msg: { t: "need", stage: m.stage } })
          .catch(() => {});
      }
    }
    d.incoming.set(m.stage, inc);
    this.completeIfDone(conn, d, inc);
  }

  /** The next bytes of an announced stage: copied (or written) in place, hashed as they arrive. */
  private chunk(conn: Connection, c: LoadChunkMsg, payload: Uint8Array): void {
    const d = this.deployments.get(conn);
    const inc = d?.incoming.get(c.stage);
    if (!d || !inc) {
      log(`ignored a chunk of stage ${c.stage}, which is not being loaded`);
      return;
    }
    const m = inc.load;
    const isData = c.part === "data";
    const filled = isData ? inc.dataFilled : inc.modelFilled;
    const total = isData ? (m.data?.bytes ?? -1) : m.bytes;
    if (
      (c.part !== "model" && c.part !== "data") ||
      c.offset !== filled ||
      filled + payload.byteLength > total
    ) {
      d.incoming.delete(c.stage);
      discardIncoming(inc);
      void this.loadFailed(
        conn,
        m,
        `${m.file}: chunk of ${payload.byteLength} bytes for ${c.part} at offset ${c.offset} does not follow the ${filled} of ${total} bytes received`,
      );
      return;
    }
    try {
      if (isData) {
        let off = 0;
        while (off < payload.byteLength)
          off += writeSync(inc.dataFd!, payload, off, payload.byteLength - off);
        inc.dataHash!.update(payload);
        inc.dataFilled += payload.byteLength;
      } else {
        inc.model.set(payload, filled);
        inc.modelHash.update(payload);
        inc.modelFilled += payload.byteLength;
      }
    } catch (err) {
      d.incoming.delete(c.stage);
      discardIncoming(inc);
      void this.loadFailed(conn, m, `${m.file}: cannot store its external data (${errorMessage(err)})`);
      return;
    } finally {
      // The chunk was copied out: its receive buffer can take the next one.
      this.pool.give(payload);
    }
    this.completeIfDone(conn, d, inc);
  }

  /** Once every byte of a stage arrived: checks the hashes and loads it. */
  private completeIfDone(conn: Connection, d: Deployment, inc: Incoming): void {
    const m = inc.load;
    if (inc.modelFilled < m.bytes || inc.dataFilled < (m.data?.bytes ?? 0)) return;
    d.incoming.delete(m.stage);
    if (inc.dataFd !== undefined) closeSync(inc.dataFd);
    inc.dataFd = undefined;
    void this.load(conn, d, inc).finally(() => discardIncoming(inc));
  }

  private async load(conn: Connection, d: Deployment, inc: Incoming): Promise<void> {
    const m = inc.load;
    const t0 = inc.t0;
    const fail = (message: string) => this.loadFailed(conn, m, message);
    const model = inc.model;
    const sha = inc.cachedSha ?? inc.modelHash.digest("hex");
    if (sha !== m.sha256) {
      await fail(
        `${m.file}: sha256 of the ${model.byteLength} bytes received is ${sha}, the manifest says ${m.sha256}`,
      );
      return;
    }
    if (m.data) {
      const dataSha = inc.dataHash!.digest("hex");
      if (dataSha !== m.data.sha256) {
        await fail(
          `${m.data.file}: sha256 of the ${inc.dataFilled} bytes received is ${dataSha}, the manifest says ${m.data.sha256}`,
        );
        return;
      }
    }
    const receiveMs = performance.now() - t0;
    if (m.data === undefined && inc.cachedSha === undefined) this.cache.put(sha, model);
    // onnxruntime resolves external data locations against the model's folder (or, for bytes, the working
    // directory): a stage may only name the data file streamed with it, never a file of this machine.
    let locations: string[];
    try {
      locations = stageExternalData(model, m.file);
    } catch (err) {
      await fail(errorMessage(err));
      return;
    }
    const foreign = locations.filter((l) => m.data === undefined || l !== m.data.file);
    if (foreign.length > 0) {
      await fail(
        `${m.file}: refers to external data '${foreign[0].slice(0, 200)}', which was not sent with the stage (a worker reads no file of its own)`,
      );
      return;
    }
    let runner: StageRunner;
    try {
      // With external data onnxruntime reads the weights from files beside the model, so both go to disk.
      let source: Uint8Array | string = model;
      if (inc.dir !== undefined) {
        source = join(inc.dir, m.file);
        writeFileSync(source, model);
      }
      const runs = this.opts.runs ?? "auto";
      runner = await openStage(
        {
          model: source,
          threads: m.threads ?? this.opts.threads ?? 1,
          file: m.file,
          ...(m.background ? { background: true } : {}),
        },
        runs === "auto" ? ((m.colocated ?? 1) > 1 ? "thread" : "inline") : runs,
      );
    } catch (err) {
      await fail(errorMessage(err));
      return;
    }
    const missingIn = m.inputs.filter((s) => !runner.inputNames.includes(s.name)).map((s) => s.name);
    const missingOut = m.outputs.filter((n) => !runner.outputNames.includes(n));
    if (missingIn.length > 0 || missingOut.length > 0) {
      await runner.release();
      await fail(
        `${m.file}: the model lacks ${[...missingIn.map((n) => `input '${n}'`), ...missingOut.map((n) => `output '${n}'`)].join(", ")} named in the manifest`,
      );
      return;
    }
    try {
      for (const routes of Object.values(m.routes))
        for (const r of routes)
          if (r.to === "stage")
            for (const t of r.replicas) if (t.worker !== d.name) await this.peer(d, t.endpoint, t.delayMs);
    } catch (err) {
      await runner.release();
      await fail(`cannot reach a downstream worker: ${errorMessage(err)}`);
      return;
    }
    if (this.deployments.get(d.coordinator) !== d) {
      await runner.release();
      return;
    }
    conn.delayMs = m.coordinatorDelayMs ?? 0;
    const old = d.stages.get(m.stage);
    old?.runner.release().catch(() => {});
    if (old) this.dropLane(old);
    d.stages.set(m.stage, {
      load: m,
      replica: m.replica ?? 0,
      runner,
      lane: runner.blocking ? this.sharedLane : { queue: [], running: false },
      specs: new Map(m.inputs.map((s) => [s.name, s])),
      pending: new Map(),
      stats: {
        stage: m.stage,
        runs: 0,
        errors: 0,
        computeMs: 0,
        computeCpuMs: 0,
        pending: 0,
        outputBytes: 0,
        serviceMs: 0,
        ...(m.packed && m.packed.length > 0 ? { packMs: 0 } : {}),
      },
      recentMs: [],
    });
    const runs = runner.blocking ? "inline" : "thread";
    log(
      `stage ${m.stage} (${m.file}) loaded in ${(performance.now() - t0).toFixed(1)} ms, runs ${runs === "thread" ? "on a thread" : "inline"}`,
    );
    await conn
      .send({
        type: "control",
        requestId: 0,
        epoch: d.epoch,
        msg: {
          ...({
            t: "loaded",
            stage: m.stage,
            loadMs: performance.now() - t0,
            receiveMs,
            runs,
          } satisfies LoadedMsg),
        },
      })
      .catch(() => {});
  }

  /** The connection to a downstream worker, opened once per deployment (with retries). */
  private peer(d: Deployment, endpoint: string, delayMs = 0): Promise<Connection> {
    const token = this.opts.token ?? "";
    let p = d.peers.get(endpoint);
    if (!p) {
      p = retry(
        () =>
          connectWorker(this.transport, endpoint, {
            token,
            role: "peer",
            from: d.name,
            deployment: d.id,
            version: this.version,
          }),
        { attempts: 3, retryable: (e) => /unreachable|handshake/.test(errorMessage(e)) },
      ).then(({ conn }) => {
        conn.delayMs = delayMs;
        conn.onClose((err) => log(`peer ${endpoint} closed${err ? `: ${err.message}` : ""}`));
        return conn;
      });
      d.peers.set(endpoint, p);
      p.catch(() => d.peers.delete(endpoint));
    }
    return p;
  }

  private requestError(
    d: Deployment,
    requestId: number,
    stage: number,
    message: string,
    unreachable?: string,
  ): void {
    for (const s of d.stages.values()) s.pending.delete(requestId);
    const st = d.stages.get(stage);
    if (st) st.stats.errors++;
    log(`request ${requestId} failed in stage ${stage}: ${message}`);
    const msg: ErrorMsg = { t: "error", kind: "request", worker: d.name, stage, message };
    if (unreachable !== undefined) msg.unreachable = unreachable;
    d.coordinator.send({ type: "control", requestId, epoch: d.epoch, msg: { ...msg } }).catch(() => {});
  }

  private dispatch(d: Deployment, f: TensorFrame): void {
    if (d.cancelled.has(f.requestId)) return;
    // A late tensor of a deployment this one replaced: its request is not this deployment's to run.
    if ((f.epoch ?? 0) !== d.epoch) return;
    let consumers = 0;
    const ready = new Set<Lane>();
    for (const s of d.stages.values()) {
      const spec = s.specs.get(f.name);
      if (!spec) continue;
      // Another replica of this stage runs this request (a tensor for a sibling stage here brought it).
      if ((f.path?.[s.load.stage] ?? 0) !== s.replica) continue;
      consumers++;
      if (spec.dtype !== f.dtype || !shapeMatches(spec.shape, f.shape)) {
        this.requestError(
          d,
          f.requestId,
          s.load.stage,
          `input '${f.name}' is ${f.dtype} [${f.shape}], the stage expects ${spec.dtype} [${spec.shape}]`,
        );
        continue;
      }
      let p = s.pending.get(f.requestId);
      if (!p) {
        p = { got: new Map(), path: f.path };
        s.pending.set(f.requestId, p);
      }
      try {
        p.got.set(f.name, frameTensor(f));
      } catch (err) {
        this.requestError(d, f.requestId, s.load.stage, `input '${f.name}': ${errorMessage(err)}`);
        continue;
      }
      if (p.got.size < s.specs.size) {
        const full =
          p.got.size === 1 && s.pending.size > MAX_PENDING_REQUESTS
            ? `${MAX_PENDING_REQUESTS} requests already wait for inputs of this stage`
            : pendingBytes(d) > this.maxPendingBytes
              ? `inputs waiting for the rest of their request exceed ${this.maxPendingBytes} bytes`
              : undefined;
        if (full !== undefined) {
          this.requestError(d, f.requestId, s.load.stage, full);
          continue;
        }
      }
      if (p.got.size === s.specs.size) {
        s.pending.delete(f.requestId);
        s.lane.queue.push({
          deployment: d,
          stage: s,
          requestId: f.requestId,
          feeds: Object.fromEntries(p.got),
          path: p.path,
        });
        this.lanes.add(s.lane);
        ready.add(s.lane);
      }
    }
    // A tensor two stages here read must outlive the first run: its buffer is not handed back (nor moved to a
    // stage thread). No job has run yet: jobs run from pump(), called below.
    if (consumers > 1) this.pool.forget(f.data);
    if (consumers === 0) {
      const first = d.stages.values().next().value;
      this.requestError(
        d,
        f.requestId,
        first?.load.stage ?? -1,
        `received tensor '${f.name}', which no stage here reads`,
      );
      return;
    }
    for (const lane of ready) void this.pump(lane);
  }

  private cancel(d: Deployment, requestId: number): void {
    d.cancelled.add(requestId);
    if (d.cancelled.size > CANCEL_MEMORY) d.cancelled.delete(d.cancelled.values().next().value as number);
    for (const s of d.stages.values()) s.pending.delete(requestId);
    for (const lane of this.lanes)
      for (let i = lane.queue.length - 1; i >= 0; i--)
        if (lane.queue[i].deployment === d && lane.queue[i].requestId === requestId) lane.queue.splice(i, 1);
    this.resumeReading();
  }

  /**
   * Runs a lane's queued jobs one at a time. In thread mode each stage is a lane, so the stages of a worker run
   * at the same time and share its CPUs as the operating system schedules them (a relay or encoder stage
   * beside a long stage is not held behind it); inline, the worker's one lane serves one run at a time.
   */
  private async pump(lane: Lane): Promise<void> {
    if (lane.running) return;
    lane.running = true;
    try {
      while (lane.queue.length > 0) {
        const job = lane.queue.shift()!;
        this.resumeReading();
        const d = job.deployment;
        if (this.deployments.get(d.coordinator) !== d || d.stages.get(job.stage.load.stage) !== job.stage)
          continue;
        if (d.cancelled.has(job.requestId)) continue;
        const t0 = performance.now();
        const st = job.stage.stats;
        const runs = st.runs;
        try {
          await this.run(d, job);
          // Charged only for runs that completed, the ones `runs` counts.
          if (st.runs > runs) st.serviceMs = (st.serviceMs ?? 0) + performance.now() - t0;
        } catch (err) {
          // A bad request never ends the worker: whatever escaped run() fails that request only.
          this.requestError(d, job.requestId, job.stage.load.stage, errorMessage(err));
        }
        while (this.unsent.length > MAX_UNSENT_REQUESTS) await this.unsent.shift();
      }
    } finally {
      lane.running = false;
      if (lane !== this.sharedLane && lane.queue.length === 0) this.lanes.delete(lane);
      // However the queue emptied (runs, cancels), no connection stays paused once nothing is queued.
      this.resumeReading();
    }
  }

  /** Forgets the queued runs of a stage that is replaced or torn down (its lane, unless shared). */
  private dropLane(s: Stage): void {
    if (s.lane === this.sharedLane) return;
    s.lane.queue.length = 0;
    if (!s.lane.running) this.lanes.delete(s.lane);
  }

  private async run(d: Deployment, job: Job): Promise<void> {
    const { stage: s, requestId } = job;
    // An inline run blocks this thread: the coordinator hears first how long it may stay silent (see BusyMsg).
    // Sent from a callback queued before the run's own, so it is the last frame before the run (a pong
    // answered in this turn goes first) and the next frame the coordinator gets means the run ended. A stage
    // on a thread of its own leaves this thread free to answer, so it sends none.
    const expectMs = s.recentMs.length > 0 ? Math.max(...s.recentMs) : undefined;
    if (s.runner.blocking && (expectMs === undefined || expectMs >= BUSY_NOTICE_MS))
      setImmediate(() => {
        d.coordinator
          .send({
            type: "control",
            requestId,
            epoch: d.epoch,
            msg:
              expectMs === undefined
                ? { t: "busy", stage: s.load.stage }
                : { t: "busy", stage: s.load.stage, expectMs },
          })
          .catch(() => {});
      });
    const charge = (r: { ms: number; cpuMs: number }) => {
      const ms = r.ms;
      s.stats.computeMs += ms;
      s.stats.computeCpuMs += r.cpuMs;
      s.recentMs.push(ms);
      if (s.recentMs.length > RECENT_RUNS) s.recentMs.shift();
    };
    // Inputs received into this worker's pool and read by this run alone move to a stage thread and come back.
    const handOver = new Set<string>();
    if (!s.runner.blocking)
      for (const [name, t] of Object.entries(job.feeds))
        if (this.pool.lends(t.data as ArrayBufferView)) handOver.add(name);
    for (const name of handOver) this.pool.forget(job.feeds[name].data as ArrayBufferView);
    let out: Record<string, ort.Tensor>;
    try {
      const r = await s.runner.run(job.feeds, s.load.outputs, handOver, (b) => this.pool.adopt(b));
      out = r.outputs;
      charge(r);
    } catch (err) {
      this.giveBack(job);
      if (err instanceof StageRunError) charge(err);
      this.requestError(d, requestId, s.load.stage, `onnxruntime failed: ${firstLine(errorMessage(err))}`);
      return;
    }
    this.giveBack(job);
    // Every output is framed before any is sent, so a tensor that cannot travel fails the request whole.
    const frames: TensorFrame[] = [];
    for (const name of s.load.outputs) {
      try {
        const dense = tensorFrame(requestId, name, out[name]);
        let frame = dense;
        if (s.load.packed?.includes(name)) {
          const t0 = performance.now();
          frame = packTensorFrame(dense);
          s.stats.packMs = (s.stats.packMs ?? 0) + performance.now() - t0;
        }
        s.stats.outputBytes = (s.stats.outputBytes ?? 0) + (frame.packed ?? frame.data).byteLength;
        if (job.path) frame.path = job.path;
        frame.epoch = d.epoch;
        frames.push(frame);
      } catch (err) {
        this.requestError(d, requestId, s.load.stage, `output ${errorMessage(err)}`);
        return;
      }
    }
    s.stats.runs++;
    const sends: Promise<unknown>[] = [];
    for (const frame of frames) {
      const name = frame.name;
      // Each worker gets a tensor once, even when several of its stages read it (dispatch feeds them all).
      const sent = new Set<string>();
      for (const r of s.load.routes[name] ?? []) {
        if (r.to === "coordinator") {
          sends.push(
            d.coordinator.send(frame).catch(() => {
              // The coordinator is gone; teardown follows from its close handler.
            }),
          );
          continue;
        }
        const k = job.path?.[r.stage] ?? 0;
        const t = r.replicas[k];
        if (!t) {
          this.requestError(
            d,
            requestId,
            s.load.stage,
            `path names replica ${k} of stage ${r.stage}, which has ${r.replicas.length}`,
          );
          continue;
        }
        if (sent.has(t.worker)) continue;
        sent.add(t.worker);
        if (t.worker === d.name) {
          this.dispatch(d, frame);
          continue;
        }
        const p = this.peer(d, t.endpoint, t.delayMs)
          .then((c) => c.send(frame))
          .catch((err) =>
            this.requestError(
              d,
              requestId,
              s.load.stage,
              `cannot send '${name}' to worker ${t.worker} at ${t.endpoint}: ${errorMessage(err)}`,
              t.worker,
            ),
          );
        sends.push(p);
      }
    }
    this.unsent.push(Promise.all(sends));
  }

  /**
   * Hands the job's input buffers back to the receive pool (onnxruntime copied what it returns); those moved to
   * a stage thread came back on their own (views of them are empty here, which the pool ignores).
   */
  private giveBack(job: Job): void {
    for (const t of Object.values(job.feeds)) this.pool.give(t.data as ArrayBufferView);
  }

  /**
   * Ends one deployment: its queued runs, stages being received, sessions and peer connections. Returns the
   * releases of its stages (each after the run in progress, if any).
   */
  private teardown(d: Deployment): Promise<void>[] {
    if (this.deployments.get(d.coordinator) !== d) return [];
    this.deployments.delete(d.coordinator);
    for (const lane of this.lanes)
      for (let i = lane.queue.length - 1; i >= 0; i--)
        if (lane.queue[i].deployment === d) lane.queue.splice(i, 1);
    for (const s of d.stages.values()) this.dropLane(s);
    this.resumeReading();
    for (const inc of d.incoming.values()) discardIncoming(inc);
    d.incoming.clear();
    d.cancelled.clear();
    const released = [...d.stages.values()].map((s) => s.runner.release().catch(() => {}));
    for (const p of d.peers.values()) p.then((c) => c.close()).catch(() => {});
    log(`deployment ${d.id} torn down`);
    return released;
  }
}

/** Releases what a stage being received holds: its data file and temp folder. Safe to call twice. */
function discardIncoming(inc: Incoming): void {
  if (inc.dataFd !== undefined) closeSync(inc.dataFd);
  inc.dataFd = undefined;
  if (inc.dir !== undefined) {
    rmSync(inc.dir, { recursive: true, force: true });
    liveDirs.delete(inc.dir);
  }
  inc.dir = undefined;
}

/** Bytes of every input held in a deployment's partial requests (a sweep: a few hundred entries at most). */
function pendingBytes(d: Deployment): number {
  let n = 0;
  for (const s of d.stages.values())
    for (const p of s.pending.values())
      for (const t of p.got.values()) n += (t.data as ArrayBufferView).byteLength;
  return n;
}

/**
 * Temp folders holding a stage's external data right now. They are removed as soon as onnxruntime opened the
 * stage, and on every way out: teardown, stop(), and (this hook, installed once per process) the process's
 * exit, also after SIGINT/SIGTERM or an uncaught error. Only SIGKILL can leave one behind.
 */
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function keepUntilExit(dir: string): void {
  liveDirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}
