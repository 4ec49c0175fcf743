import { encodedName, isPacked } from "../../onnx/encoding.js";
import { randomUUID } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import type { Manifest, ManifestStage, TensorSpec } from "../../export/manifest.js";
import { readManifest } from "../../export/manifest-io.js";
import { ArgumentError, CleaveError, errorMessage, RuntimeFault } from "../../errors.js";
import { connectWorker } from "../transport/handshake.js";
import { WaiterMap } from "../deadline.js";
import { logger } from "../log.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import {
  DEFAULT_HEARTBEAT_MS,
  Pipeline,
  type PipelineLink,
  type StageLoad,
  type WorkerAddress,
} from "./pipeline.js";
import type { LoadChunkMsg, LoadMsg, Route } from "../transport/protocol.js";
import { MAX_PATH } from "../transport/frame.js";
import { Replica, ReplicaGroup } from "./replicas.js";
import type { TlsConfig, TransportName } from "../transport/transport.js";
import { makeTransport } from "../transport/transports.js";

const log = logger("runtime:deploy");

/** Options of {@link deploy}. */
export interface DeployOptions {
  /** Token the workers were started with. */
  token?: string;
  /**
   * Time allowed for connecting and the handshake, for each chunk of a stage model to be taken, for a stage to
   * load once its bytes are sent, and the default deadline of each request, ms (default 30000).
   */
  timeoutMs?: number;
  /**
   * Most requests in flight at once; further infer() calls wait for a slot (default 2 x the number of distinct
   * workers, so every replica can have one request running and one waiting).
   */
  maxInFlight?: number;
  /**
   * Relative speed of each replica of a replicated stage (e.g. the plan's share), by stage number and device;
   * the dispatcher's first estimate of its time per request is 1 / weight, until measured. Default 1.
   */
  replicaWeights?: (stage: number, device: string) => number | undefined;
  /** Transport the workers listen with (default "tcp"). */
  transport?: TransportName;
  /** Largest frame sent or accepted, bytes. */
  maxFrameBytes?: number;
  /** TLS to the workers (they must be started with the same mode; tcp only; default none). */
  tls?: TlsConfig;
  /** Size of the chunks stage models are sent in, bytes (default DEPLOY_CHUNK_BYTES; never above a frame). */
  chunkBytes?: number;
  /**
   * User-space one-way latency to add on a link, ms, by sender and receiver name (worker names, and
   * "coordinator"); used by the emulated testbed, whose kernel has no netem.
   */
  linkDelayMs?: (from: string, to: string) => number;
  signal?: AbortSignal;
  /** Deployment epoch (u32) stamped on every request frame (default 0; the control loop counts deployments). */
  epoch?: number;
  /**
   * Failure detector: a worker silent this long beyond an announced stage run is lost, ms (default
   * DEFAULT_HEARTBEAT_MS; see Pipeline.startHeartbeat).
   */
  heartbeatMs?: number;
  /**
   * Ask each worker for a stage from its cache first (by sha256) and send the bytes only when it lacks it
   * (default true): redeploying a stage a worker ran before ships nothing.
   */
  cache?: boolean;
}

/**
 * Default size of the chunks a stage model is sent in, bytes (bounded by either side's frame limit). Chunks of
 * 1, 4 and 16 MiB deployed vgg16's 508 MiB stage in the same time within noise (bench/deploy.ts); 4 MiB keeps a
 * chunk's copy short and the worker's receive buffer small.
 */
export const DEPLOY_CHUNK_BYTES = 4 * 1024 * 1024;

/** Room left in a frame for the chunk's control header and JSON message, bytes. */
const CHUNK_HEADER_ROOM = 1024;

/** A split model on disk: a folder with manifest.json, or the manifest and the folder its files are in. */
export type DeploySource = string | { manifest: Manifest; dir: string };

/** The devices a manifest stage names: its replica group (`devices`), else its `device`, else none. */
function namedDevices(s: ManifestStage): string[] {
  return s.devices !== undefined && s.devices.length > 0
    ? s.devices
    : s.device !== undefined
      ? [s.device]
      : [];
}

/**
 * Assigns stages to workers, a group per stage (its replicas, in order): by each stage's `devices` (or
 * `device`) when every stage names given workers, else one worker per stage in order. A worker may run
 * several stages; a stage's group lists a worker once.
 */
export function assignStages(manifest: Manifest, workers: readonly WorkerAddress[]): WorkerAddress[][] {
  const names = new Set<string>();
  for (const w of workers) {
    if (names.has(w.name))
      throw new ArgumentError(`workers: name '${w.name}' is given twice`, { device: w.name });
    names.add(w.name);
  }
  const byName = new Map(workers.map((w) => [w.name, w]));
  manifest.stages.forEach((s, i) => {
    const ds = namedDevices(s);
    const twice = ds.find((d, k) => ds.indexOf(d) !== k);
    if (twice !== undefined)
      throw new ArgumentError(`manifest: stages[${i}].devices: device '${twice}' is listed twice`, {
        field: `stages[${i}].devices`,
        device: twice,
      });
  });
  const named = manifest.stages.map(namedDevices);
  if (named.every((ds) => ds.length > 0 && ds.every((d) => byName.has(d))))
    return named.map((ds) => ds.map((d) => byName.get(d)!));
  const replicated = manifest.stages.findIndex((s) => namedDevices(s).length > 1);
  if (replicated >= 0) {
    const missing = named[replicated].filter((d) => !byName.has(d));
    throw new ArgumentError(
      `workers: stage ${replicated} is replicated on ${named[replicated].join(", ")}; give a worker for each of its devices by name${missing.length > 0 ? ` (missing: ${missing.join(", ")})` : ""}`,
      { device: missing[0] ?? named[replicated][0], stage: replicated },
    );
  }
  if (workers.length !== manifest.stages.length)
    throw new ArgumentError(
      `workers: ${workers.length} given for ${manifest.stages.length} stages (give one per stage, or name each stage's device: ${manifest.stages.map((s) => s.device ?? "?").join(", ")})`,
    );
  return workers.map((w) => [w]);
}

/**
 * Deploys a split model on running workers: checks each worker's health, token and version (a one-line
 * RuntimeFault such as `worker w1 at 127.0.0.1:5000: unreachable (ECONNREFUSED)` when one is wrong),
 * announces each stage (its files' lengths and sha256, where its outputs go), streams its model file and
 * external data in chunks that fit both sides' frame limits, and waits until every stage is loaded (the
 * worker checks the hashes once every chunk arrived). Returns the {@link Pipeline}; call `close()` when done.
 */
export async function deploy(
  source: DeploySource,
  workers: readonly WorkerAddress[],
  opts: DeployOptions = {},
): Promise<Pipeline> {
  const { manifest, dir } = typeof source === "string" ? readManifest(source) : source;
  const assigned = assignStages(manifest, workers);
  const timeoutMs = opts.timeoutMs ?? 30000;
  const transport = makeTransport(opts.transport ?? "tcp", {
    maxFrameBytes: opts.maxFrameBytes,
    tls: opts.tls,
  });
  const deployment = randomUUID();
  const delay = opts.linkDelayMs ?? (() => 0);

  const distinct = [...new Map(assigned.flat().map((w) => [w.name, w])).values()];
  const weights = assigned.map((g, i) =>
    g.map((w) => {
      const stage = manifest.stages[i].index ?? i;
      const x = opts.replicaWeights?.(stage, w.name) ?? 1;
      if (!(x > 0) || !Number.isFinite(x))
        throw new ArgumentError(
          `replica weight of stage ${stage} on ${w.name}: ${x} is not a positive number`,
          {
            device: w.name,
            stage,
          },
        );
      return x;
    }),
  );
  const stageNo = manifest.stages.map((s, i) => s.index ?? i);
  if (assigned.some((g) => g.length > 1) && Math.max(...stageNo) >= MAX_PATH)
    throw new ArgumentError(
      `manifest: a replicated split has at most ${MAX_PATH} stages (stage ${Math.max(...stageNo)})`,
    );
  const settled = await Promise.allSettled(
    distinct.map((w) =>
      connectWorker(transport, w.endpoint, {
        token: opts.token,
        role: "coordinator",
        from: "coordinator",
        timeoutMs: Math.min(timeoutMs, 10000),
        signal: opts.signal,
      }),
    ),
  );
  const links = new Map<string, PipelineLink>();
  const frameLimit = new Map<string, number>();
  settled.forEach((s, i) => {
    const w = distinct[i];
    if (s.status !== "fulfilled") return;
    frameLimit.set(w.name, s.value.welcome.maxFrameBytes);
    // From here on the connection's own errors name the device, not its (often ephemeral) port.
    s.value.conn.peer = `worker ${w.name}`;
    links.set(w.name, {
      name: w.name,
      endpoint: w.endpoint,
      conn: s.value.conn,
      stages: [],
      pid: s.value.welcome.pid,
      threads: s.value.welcome.threads,
      statsWaiters: new WaiterMap(),
    });
  });
  const failedAt = settled.findIndex((s) => s.status === "rejected");
  if (failedAt >= 0) {
    for (const l of links.values()) l.conn.close();
    const reason = (settled[failedAt] as PromiseRejectedResult).reason;
    throw new RuntimeFault("WORKER", `worker ${distinct[failedAt].name} at ${errorMessage(reason)}`, {
      device: distinct[failedAt].name,
    });
  }
  const stageLinks = assigned.map((g) => g.map((w) => links.get(w.name)!));
  stageLinks.forEach((g, i) => {
    for (const l of g) l.stages.push(stageNo[i]);
  });
  const groups = stageLinks.map(
    (g, i) =>
      new ReplicaGroup(
        stageNo[i],
        g.map((l, k) => new Replica(l, stageNo[i], k, l.name, l.endpoint, weights[i][k])),
      ),
  );
  const loads = manifest.stages.flatMap((stage, i) =>
    stageLinks[i].map((link, k) => ({ stage, i, link, k })),
  );
  const maxInFlight = opts.maxInFlight ?? 2 * distinct.length;
  const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!(heartbeatMs > 0) || !Number.isFinite(heartbeatMs)) {
    for (const l of links.values()) l.conn.close();
    throw new ArgumentError(`heartbeat: ${heartbeatMs} ms is not a positive number of ms`, {
      field: "heartbeatMs",
    });
  }
  const pipeline = new Pipeline(manifest, links, groups, maxInFlight, timeoutMs, opts.epoch ?? 0);
  for (const l of links.values()) l.conn.delayMs = delay("coordinator", l.name);

  const modelOutputs = new Set(manifest.outputs.map((o) => o.name));
  // Wire tensors a plan sends zero-packed: the sending worker packs them when that makes them smaller.
  const packedWire = new Set(
    (manifest.encodings ?? [])
      .filter((e) => isPacked(e.encoding))
      .map((e) => encodedName(e.tensor, e.encoding)),
  );
  const specOf = (name: string): TensorSpec =>
    manifest.tensors[name] ??
    manifest.inputs.find((i) => i.name === name) ??
    (() => {
      throw new ArgumentError(`manifest: tensor '${name}' has no type in 'tensors'`, { tensor: name });
    })();
  const colocated = colocatedStages(
    manifest.stages,
    stageLinks.map((g) => g.map((l) => l.name)),
    maxInFlight,
  );
  const background = backgroundStages(
    stageLinks.map((g) => g.map((l) => l.name)),
    colocated,
  );
  try {
    await Promise.all(
      loads.map(async ({ stage, i, link, k }) => {
        const routes: Record<string, Route[]> = {};
        for (const out of stage.outputs) {
          const rs: Route[] = [];
          manifest.stages.forEach((later, j) => {
            if (j <= i || !later.inputs.includes(out)) return;
            rs.push({
              to: "stage",
              stage: stageNo[j],
              replicas: stageLinks[j].map((to) => ({
                worker: to.name,
                endpoint: to.endpoint,
                delayMs: delay(link.name, to.name),
              })),
            });
          });
          if (modelOutputs.has(out)) rs.push({ to: "coordinator" });
          routes[out] = rs;
        }
        const msg: LoadMsg = {
          t: "load",
          deployment,
          stage: stageNo[i],
          worker: link.name,
          replica: k,
          file: stage.file,
          sha256: stage.sha256,
          bytes: fileLength(dir, stage.file, i),
          ...(stage.data ? { data: { ...stage.data, bytes: fileLength(dir, stage.data.file, i) } } : {}),
          inputs: stage.inputs.map(specOf),
          outputs: stage.outputs,
          routes,
          // The token is not sent: each worker reaches the others with its own, by challenge-response.
          workers: distinct.map((w) => ({ worker: w.name, endpoint: w.endpoint })),
          coordinatorDelayMs: delay(link.name, "coordinator"),
          epoch: opts.epoch ?? 0,
          ...(stage.data === undefined && opts.cache !== false ? { cached: true } : {}),
          ...(stage.outputs.some((o) => packedWire.has(o))
            ? { packed: stage.outputs.filter((o) => packedWire.has(o)) }
            : {}),
          colocated: colocated[i][k],
          ...(background[i][k] ? { background: true } : {}),
        };
        const chunk = chunkBytesFor(link, frameLimit.get(link.name)!, opts);
        const at = loads.findIndex((l) => l.i === i && l.k === k);
        pipeline.stageLoads[at] = await loadStage(pipeline, link, msg, dir, chunk, timeoutMs);
      }),
    );
  } catch (err) {
    await pipeline.close();
    if (err instanceof CleaveError) throw err;
    throw new RuntimeFault("WORKER", `deploy failed: ${errorMessage(err)}`);
  }
  log(`deployed ${manifest.stages.length} stages (${loads.length} replicas) on ${links.size} workers`);
  pipeline.startHeartbeat(heartbeatMs);
  return pipeline;
}

function fileLength(dir: string, file: string, stage: number): number {
  const path = join(dir, file);
  try {
    return statSync(path).size;
  } catch (err) {
    throw new ArgumentError(`${path}: cannot read stage ${stage} (${errorMessage(err)})`, {
      file: path,
      stage,
    });
  }
}

/** The chunk size for a worker: the option (default DEPLOY_CHUNK_BYTES) within both sides' frame limits. */
function chunkBytesFor(link: PipelineLink, workerMax: number, opts: DeployOptions): number {
  const limit = Math.min(workerMax, opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) - CHUNK_HEADER_ROOM;
  if (limit < 1)
    throw new RuntimeFault(
      "WORKER",
      `worker ${link.name} at ${link.endpoint}: accepts frames of at most ${workerMax} bytes, too few to send a stage model in chunks`,
      { device: link.name },
    );
  return Math.min(opts.chunkBytes ?? DEPLOY_CHUNK_BYTES, limit);
}

/**
 * Announces one stage, streams its files in chunks and waits for the worker's `loaded`. Fails when the worker
 * reports an error, or when `timeoutMs` passes without a chunk being taken or, after the last, without an answer.
 */
async function loadStage(
  pipeline: Pipeline,
  link: PipelineLink,
  msg: LoadMsg,
  dir: string,
  chunkBytes: number,
  timeoutMs: number,
): Promise<StageLoad> {
  const key = `${link.name}/${msg.stage}`;
  const t0 = performance.now();
  const notLoaded = (what: string) => () =>
    new RuntimeFault(
      "WORKER",
      `worker ${link.name} at ${link.endpoint}: stage ${msg.stage} not loaded (${what} within ${timeoutMs} ms)`,
      { device: link.name, stage: msg.stage },
    );
  // The deadline restarts with every chunk taken, so a slow link is not cut off while a stalled worker is.
  const w = pipeline.loadWaiters.add(key, { ms: timeoutMs, timeout: notLoaded("announcement not taken") });
  const loaded = w.promise;
  const arm = (what: string) => w.rearm(timeoutMs, notLoaded(what));
  let chunks = 0;
  // Announced as cached: the worker answers `need` when it lacks the stage, else loads it from its cache.
  const needed = new Promise<boolean>((resolve) => {
    if (msg.cached === true) pipeline.needWaiters.set(key, () => resolve(true));
    else resolve(true);
    loaded.then(
      () => resolve(false),
      () => resolve(false),
    );
  });
  try {
    await Promise.race([
      link.conn.send({ type: "control", requestId: 0, epoch: msg.epoch ?? 0, msg: { ...msg } }),
      loaded,
    ]);
    const parts: Array<[LoadChunkMsg["part"], string, number]> = (await needed)
      ? [["model", msg.file, msg.bytes]]
      : [];
    if (msg.data && parts.length > 0) parts.push(["data", msg.data.file, msg.data.bytes]);
    for (const [part, file, bytes] of parts) {
      let offset = 0;
      if (bytes > 0) {
        const path = join(dir, file);
        const stream = createReadStream(path, { highWaterMark: chunkBytes, end: bytes - 1 });
        for await (const buf of stream as AsyncIterable<Buffer>) {
          const m: LoadChunkMsg = { t: "load-chunk", stage: msg.stage, part, offset };
          await Promise.race([
            link.conn.send({ type: "control", requestId: 0, msg: { ...m }, payload: buf }),
            loaded,
          ]);
          arm("a chunk not taken");
          offset += buf.byteLength;
          chunks++;
        }
      }
      if (offset !== bytes)
        throw new ArgumentError(
          `${join(dir, file)}: changed while being sent (${offset} of ${bytes} bytes)`,
          {
            file: join(dir, file),
            stage: msg.stage,
          },
        );
    }
    arm("no answer after its last chunk");
    const done = await loaded;
    return {
      stage: msg.stage,
      worker: link.name,
      bytes: chunks > 0 ? msg.bytes + (msg.data?.bytes ?? 0) : 0,
      chunks,
      deployMs: performance.now() - t0,
      receiveMs: done.receiveMs,
      loadMs: done.loadMs,
      ...(done.runs === "thread" || done.runs === "inline" ? { runs: done.runs } : {}),
    };
  } finally {
    w.reject(new RuntimeFault("WORKER", `worker ${link.name}: stage ${msg.stage} load abandoned`));
    pipeline.needWaiters.delete(key);
  }
}

/**
 * For each stage and each of its workers, whether that replica runs in the background (`LoadMsg.background`):
 * its stage is replicated, and its worker also runs a stage of one replica, which every request passes
 * through and which may run at the same time as it (`colocated` > 1). On camera-server the camera encodes every
 * input for the server and has a replica of the whole model: at equal priority the replica's run took half
 * the camera's quota from the encoding whenever both were ready, and the server waited for its inputs.
 */
export function backgroundStages(
  workers: readonly (readonly string[])[],
  colocated: readonly (readonly number[])[],
): boolean[][] {
  return workers.map((ws, i) =>
    ws.map(
      (w, k) =>
        ws.length > 1 &&
        colocated[i][k] > 1 &&
        workers.some((other, j) => j !== i && other.length === 1 && other[0] === w),
    ),
  );
}

/**
 * For each stage and each of its workers, the stages of that worker that may run at the same time as it, itself
 * included (`LoadMsg.colocated`): every stage a worker holds when more than one request may
 * be in flight; with one at a time, only those the stage graph leaves unordered with it (neither reads,
 * directly or through other stages, what the other writes). `workers[i]` are stage i's workers; stages are
 * listed as a manifest lists them, each after the stages it reads from.
 */
export function colocatedStages(
  stages: readonly { inputs: readonly string[]; outputs: readonly string[] }[],
  workers: readonly (readonly string[])[],
  maxInFlight: number,
): number[][] {
  const writer = new Map<string, number>();
  stages.forEach((s, i) => {
    for (const o of s.outputs) writer.set(o, i);
  });
  // before[j]: every stage j depends on.
  const before: Set<number>[] = stages.map(() => new Set<number>());
  stages.forEach((s, j) => {
    for (const t of s.inputs) {
      const i = writer.get(t);
      if (i === undefined || i >= j) continue;
      before[j].add(i);
      for (const x of before[i]) before[j].add(x);
    }
  });
  const ordered = (a: number, b: number) => before[a].has(b) || before[b].has(a);
  return stages.map((_, i) =>
    workers[i].map(
      (w) =>
        workers.filter((ws, j) => ws.includes(w) && (j === i || maxInFlight > 1 || !ordered(i, j))).length,
    ),
  );
}
