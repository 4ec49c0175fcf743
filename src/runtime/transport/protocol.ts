import { z } from "zod";
import type { StageDataFile, TensorSpec } from "../../export/manifest.js";
import { isDType } from "../../onnx/dtype.js";

/**
 * Control messages between a coordinator, workers and probes (JSON in control frames; tensors travel
 * in tensor frames). Every connection starts with a challenge-response handshake (see handshake.ts):
 * `hello` from the side that connected, `challenge` from the worker, `auth` (the proof of the token),
 * then `welcome` (with the worker's own proof) or `reject`. The token itself never travels. A worker
 * processes nothing else from a peer before it authenticated, and checks every later message against
 * {@link PEER_MESSAGE} before using it.
 */
export type Role = "coordinator" | "peer" | "probe";

/** First message on every connection to a worker. */
export interface HelloMsg {
  t: "hello";
  /** cleave version of the sender; a worker refuses another version. */
  version: string;
  role: Role;
  /** Name of the sender (worker name, or "coordinator"). */
  from: string;
  /** For role "peer": the deployment whose tensors it will send. */
  deployment?: string;
  /** 32 random bytes (hex) the worker's proof covers: a recorded welcome cannot be replayed to this client. */
  nonce: string;
}

/** Worker -> client: the worker's nonce; the client answers with `auth`. */
export interface ChallengeMsg {
  t: "challenge";
  version: string;
  /** 32 random bytes (hex), fresh for every connection: a recorded `auth` is worth nothing on another. */
  nonce: string;
}

/** Client -> worker: HMAC-SHA256 keyed by the token over the handshake transcript (hex). */
export interface AuthMsg {
  t: "auth";
  proof: string;
}

/** A worker's answer to an accepted hello. */
export interface WelcomeMsg {
  t: "welcome";
  /** The worker's HMAC-SHA256 over the transcript (hex): the client checks the worker holds the token too. */
  proof: string;
  version: string;
  /** The worker's own name (`--name`). */
  name: string;
  threads: number;
  pid: number;
  /** Largest frame the worker accepts, bytes: stage models are sent in chunks that fit in it. */
  maxFrameBytes: number;
}

/** A worker's answer to a refused hello; the worker closes the connection right after. */
export interface RejectMsg {
  t: "reject";
  reason: "token" | "version" | "busy" | "protocol";
  message: string;
  /** The worker's version. */
  version: string;
}

/** A worker running one replica of a stage. */
export interface RouteTarget {
  worker: string;
  endpoint: string;
  /** User-space one-way delay on sends to it, ms. */
  delayMs?: number;
}

/**
 * Where one stage output goes: back to the coordinator, or to a later stage that reads it. A stage's
 * `replicas` are its group in replica order; a request's tensor goes to the one its path names
 * (`path[stage]`, replica 0 when the frame has no path).
 */
export type Route = { to: "coordinator" } | { to: "stage"; stage: number; replicas: RouteTarget[] };

/**
 * Coordinator -> worker: run stage `stage`. The message carries no model bytes: they follow in
 * `load-chunk` frames (the model file first, then its external data when it has some), each small enough
 * for one frame, so a stage of any size deploys.
 */
export interface LoadMsg {
  t: "load";
  deployment: string;
  stage: number;
  /** The name the coordinator knows this worker by (used in every error it sends). */
  worker: string;
  /**
   * This worker's index in the stage's replica group (default 0): a tensor for the stage is taken only when
   * its frame's path names this replica.
   */
  replica?: number;
  /** Stage file name, for messages. */
  file: string;
  sha256: string;
  /** Length of the stage file, bytes. */
  bytes: number;
  /** The stage's external data file (tensors stored beside a model over protobuf's 2 GB limit). */
  data?: StageDataFile;
  /** Type of each input the stage reads (checked on arrival). */
  inputs: TensorSpec[];
  /** Output names the stage produces, and where each goes. */
  outputs: string[];
  routes: Record<string, Route[]>;
  /**
   * The deployment's workers (name and endpoint): tensors are taken only from them (and the coordinator), and
   * routes may only point at them. Downstream workers are reached with this worker's own token.
   */
  workers: RouteTarget[];
  /** onnxruntime intra-op threads; default: the worker's --threads. */
  threads?: number;
  /** User-space one-way delay on this worker's sends to the coordinator, ms. */
  coordinatorDelayMs?: number;
  /**
   * The deployment's epoch (u32, default 0): stamped on every frame this worker sends for it; tensor frames of
   * another epoch are dropped.
   */
  epoch?: number;
  /**
   * The coordinator asks whether the worker holds this stage file in its cache (by sha256): if it does, the
   * stage loads from the cache and no chunk follows; if not, the worker answers `need` and the chunks follow.
   */
  cached?: boolean;
  /**
   * Outputs sent zero-packed (a lossless encoding of sparse tensors, onnx/zero-pack.ts) whenever that
   * makes them smaller; the plan chose them. Every name must be one of `outputs`.
   */
  packed?: string[];
  /**
   * Stages of this deployment the worker runs that may run at the same time as this one, this one included
   * (absent: 1): all it runs when several requests may be in flight, else those the stage graph leaves
   * unordered with it. With `--runs auto` a worker runs a stage on a thread of its own only when this exceeds 1.
   */
  colocated?: number;
  /**
   * Run this stage below the worker's other work in priority (on a thread of its own, at a lower scheduling
   * priority): it is a replica, and the worker also runs a stage every request passes through, which its runs
   * must not hold up (an input device feeding a first stage it also has a replica of).
   */
  background?: boolean;
}

/** Worker -> coordinator: a stage announced with `cached` is not in the cache; send its chunks. */
export interface NeedMsg {
  t: "need";
  stage: number;
}

/**
 * Worker -> coordinator, just before a stage run that may keep the worker's event loop busy (onnxruntime-node
 * runs a session on the JS thread, so no ping is answered until it returns): the stage, and how long its runs
 * took lately (the longest of the last few, ms; absent before the first). The coordinator's failure detector
 * allows this much silence before it suspects the worker.
 */
export interface BusyMsg {
  t: "busy";
  stage: number;
  expectMs?: number;
}

/**
 * Coordinator -> worker: the next bytes of a stage announced by `load` (payload: the bytes). Chunks of a
 * part arrive in order; `offset` is checked against the bytes already received.
 */
export interface LoadChunkMsg {
  t: "load-chunk";
  stage: number;
  /** "model" for the stage file, "data" for its external data file. */
  part: "model" | "data";
  /** Position of the payload's first byte in the part, bytes. */
  offset: number;
}

/** Worker -> coordinator: stage loaded and its downstream peers reached. */
export interface LoadedMsg {
  t: "loaded";
  stage: number;
  /** Time from the announcement to ready: receive, verify, open the session and connect downstream, ms. */
  loadMs: number;
  /** Of which receiving and verifying the bytes, ms. */
  receiveMs: number;
  /** Where the worker runs the stage: a thread of its own, or its I/O thread (absent from older workers). */
  runs?: "thread" | "inline";
}

/** Worker -> coordinator: a request failed in a stage (requestId in the frame header), or loading failed. */
export interface ErrorMsg {
  t: "error";
  worker: string;
  stage: number;
  message: string;
  /** "load" when the stage could not be loaded, "request" for a failed request. */
  kind: "load" | "request";
  /**
   * For a request that failed because a tensor could not be sent to another worker: that worker's name (the
   * coordinator then treats it as lost and runs the request again on the rest of its group).
   */
  unreachable?: string;
}

/** Coordinator -> worker: drop everything about the frame's request id (it failed or timed out). */
export interface CancelMsg {
  t: "cancel";
}

/** Liveness and round trip; answered with `pong` after every frame sent before it was processed. */
export interface PingMsg {
  t: "ping";
}
export interface PongMsg {
  t: "pong";
}

/** Probe -> worker: bytes to count and drop (bandwidth measurement). */
export interface SinkMsg {
  t: "sink";
}

/** Coordinator -> worker: report per-stage counters. */
export interface StatsMsg {
  t: "stats";
}

/** Per-stage counters a worker keeps. */
export interface StageStats {
  stage: number;
  /** Requests run to completion. */
  runs: number;
  /** Requests that failed in this stage. */
  errors: number;
  /** Total time inside session.run, ms. */
  computeMs: number;
  /** CPU time the worker process used inside session.run (all of onnxruntime's threads), ms. */
  computeCpuMs: number;
  /** Requests whose inputs were waiting when asked. */
  pending: number;
  /** Bytes of the stage's outputs as framed (zero-packed ones as packed), over every run. */
  outputBytes?: number;
  /** Time spent zero-packing outputs, ms (absent: the stage packs none). */
  packMs?: number;
  /**
   * Wall time from taking each run off the worker's queue until its outputs were handed to the transport, ms:
   * the run, the framing, and any time the device's CPU was not the worker's meanwhile (a CPU quota throttles a
   * process between session runs as much as within them). Per run it is what the stage costs the device, which
   * `computeMs` alone understates on a throttled device. Absent from workers older than it.
   */
  serviceMs?: number;
}

/** Worker -> coordinator: answer to `stats`. */
export interface StatsReplyMsg {
  t: "stats-reply";
  worker: string;
  stages: StageStats[];
  /** CPU time the worker process has used since it started (user + system, all threads), ms. */
  cpuMs: number;
  /** Large frames received into a buffer handed back by an earlier request instead of a new one. */
  receiveBuffersReused: number;
  /** Times the worker stopped reading from a connection because its run queue was long (backpressure). */
  readsPaused: number;
}

/** Coordinator -> worker: drop the stages of this deployment; answered with `undeployed`. */
export interface UndeployMsg {
  t: "undeploy";
}

// ---- Schemas: every message a worker receives is checked against one before it is used. ----

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 hex digits");
const name = z.string().min(1).max(256);
const count = z.number().int().nonnegative();
const safeBytes = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** Stage numbers and replica indices travel in one byte of a request path. */
const stageNo = z.number().int().min(0).max(65535);
const replicaNo = z.number().int().min(0).max(254);
const delayMs = z.number().nonnegative().max(600_000);

/** The first message a worker accepts on a connection. Unknown roles and extra fields are refused. */
export const HELLO_MESSAGE = z
  .object({
    t: z.literal("hello"),
    version: z.string().max(64),
    role: z.enum(["coordinator", "peer", "probe"]),
    from: name,
    deployment: z.string().min(1).max(128).optional(),
    nonce: hex64,
  })
  .strict();

/** The second message a worker accepts: the client's proof. */
export const AUTH_MESSAGE = z.object({ t: z.literal("auth"), proof: hex64 }).strict();

const tensorSpec = z
  .object({
    name,
    dtype: z.string().refine(isDType, "not a dtype cleave sends"),
    shape: z
      .array(
        z
          .number()
          .int()
          .min(-1)
          .max(2 ** 32 - 1),
      )
      .max(255),
  })
  .strict();

const routeTarget = z
  .object({ worker: name, endpoint: z.string().min(3).max(300), delayMs: delayMs.optional() })
  .strict();

const route = z.discriminatedUnion("to", [
  z.object({ to: z.literal("coordinator") }).strict(),
  z
    .object({ to: z.literal("stage"), stage: stageNo, replicas: z.array(routeTarget).min(1).max(255) })
    .strict(),
]);

/**
 * `load`, strictly: a field the worker does not know (session options, a custom-operator library) is refused,
 * not ignored, so nothing beyond these fields can shape how the stage is opened.
 */
const loadMessage = z
  .object({
    t: z.literal("load"),
    deployment: z.string().min(1).max(128),
    stage: stageNo,
    worker: name,
    replica: replicaNo.optional(),
    file: name,
    sha256: hex64,
    bytes: safeBytes,
    data: z.object({ file: name, bytes: safeBytes, sha256: hex64 }).strict().optional(),
    inputs: z.array(tensorSpec).max(4096),
    outputs: z.array(name).max(4096),
    routes: z.record(z.string(), z.array(route).max(256)),
    workers: z.array(routeTarget).max(1024),
    threads: z.number().int().min(1).max(4096).optional(),
    coordinatorDelayMs: delayMs.optional(),
    epoch: z
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .optional(),
    cached: z.boolean().optional(),
    packed: z.array(name).max(4096).optional(),
    colocated: z.number().int().min(1).max(65536).optional(),
    background: z.boolean().optional(),
  })
  .strict();

const loadChunkMessage = z
  .object({ t: z.literal("load-chunk"), stage: stageNo, part: z.enum(["model", "data"]), offset: count })
  .strict();

const bare = <T extends string>(t: T) => z.object({ t: z.literal(t) }).strict();

/** Every control message a worker accepts after the handshake. */
export const PEER_MESSAGE = z.discriminatedUnion("t", [
  loadMessage,
  loadChunkMessage,
  bare("cancel"),
  bare("ping"),
  bare("sink"),
  bare("stats"),
  bare("undeploy"),
]);

/** A control message a worker accepted, typed. */
export type PeerMessage = z.infer<typeof PEER_MESSAGE>;

/** Which control messages each role may send a worker (tensors: coordinator and peer only). */
export const ROLE_MESSAGES: Record<Role, ReadonlySet<PeerMessage["t"]>> = {
  coordinator: new Set(["load", "load-chunk", "cancel", "ping", "stats", "undeploy"]),
  peer: new Set(["ping"]),
  probe: new Set(["ping", "sink"]),
};

/**
 * Checks a received message against `schema`; returns it typed, or one line saying what is wrong
 * (`load.inputs.0.dtype: not a dtype cleave sends`).
 */
export function checkMessage<T>(
  schema: z.ZodType<T>,
  msg: unknown,
): { ok: true; msg: T } | { ok: false; why: string } {
  const r = schema.safeParse(msg);
  if (r.success) return { ok: true, msg: r.data };
  const tag = typeof (msg as { t?: unknown })?.t === "string" ? String((msg as { t: string }).t) : "message";
  const issue = r.error.issues[0];
  const at = [tag.slice(0, 32), ...issue.path.map(String)].join(".");
  return { ok: false, why: `${at}: ${issue.message}` };
}
