import type { StageDataFile, TensorSpec } from "../export/manifest.js";

/**
 * Control messages between a coordinator, workers and probes (JSON in control frames; tensors travel
 * in tensor frames). Every connection starts with `hello` from the side that connected; the worker
 * answers `welcome` or `reject` and processes nothing else from a peer until the hello checks out.
 */
export type Role = "coordinator" | "peer" | "probe";

/** First message on every connection to a worker. */
export interface HelloMsg {
  t: "hello";
  /** cleave version of the sender; a worker refuses another version. */
  version: string;
  token: string;
  role: Role;
  /** Name of the sender (worker name, or "coordinator"). */
  from: string;
  /** For role "peer": the deployment whose tensors it will send. */
  deployment?: string;
}

/** A worker's answer to an accepted hello. */
export interface WelcomeMsg {
  t: "welcome";
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
  /** Token to present to downstream workers. */
  token: string;
  /** onnxruntime intra-op threads; default: the worker's --threads. */
  threads?: number;
  /** User-space one-way delay on this worker's sends to the coordinator, ms. */
  coordinatorDelayMs?: number;
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
}

/** Coordinator -> worker: drop the stages of this deployment; answered with `undeployed`. */
export interface UndeployMsg {
  t: "undeploy";
}
