import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Manifest, TensorSpec } from "../export/manifest.js";
import { readManifest } from "../export/manifest-io.js";
import { ArgumentError, CleaveError, errorMessage, RuntimeFault } from "../errors.js";
import { connectWorker } from "./handshake.js";
import { logger } from "./log.js";
import { Pipeline, type PipelineLink, type WorkerAddress } from "./pipeline.js";
import type { LoadMsg, Route } from "./protocol.js";
import type { TransportName } from "./transport.js";
import { makeTransport } from "./transports.js";

const log = logger("runtime:deploy");

/** Options of {@link deploy}. */
export interface DeployOptions {
  /** Token the workers were started with. */
  token?: string;
  /** Time allowed for connecting, the handshake and loading each stage, and the default deadline of each request, ms (default 30000). */
  timeoutMs?: number;
  /** Most requests in flight at once; further infer() calls wait for a slot (default 2 x stages). */
  maxInFlight?: number;
  /** Transport the workers listen with (default "tcp"). */
  transport?: TransportName;
  /** Largest frame sent or accepted, bytes. */
  maxFrameBytes?: number;
  /**
   * User-space one-way latency to add on a link, ms, by sender and receiver name (worker names, and
   * "coordinator"); used by the emulated testbed, whose kernel has no netem.
   */
  linkDelayMs?: (from: string, to: string) => number;
  signal?: AbortSignal;
}

/** A split model on disk: a folder with manifest.json, or the manifest and the folder its files are in. */
export type DeploySource = string | { manifest: Manifest; dir: string };

/** Assigns stages to workers: by `stage.device` when every stage names a given worker, else one worker per stage in order. */
export function assignStages(manifest: Manifest, workers: readonly WorkerAddress[]): WorkerAddress[] {
  const names = new Set<string>();
  for (const w of workers) {
    if (names.has(w.name))
      throw new ArgumentError(`workers: name '${w.name}' is given twice`, { device: w.name });
    names.add(w.name);
  }
  const byName = new Map(workers.map((w) => [w.name, w]));
  if (manifest.stages.every((s) => s.device !== undefined && byName.has(s.device)))
    return manifest.stages.map((s) => byName.get(s.device!)!);
  if (workers.length !== manifest.stages.length)
    throw new ArgumentError(
      `workers: ${workers.length} given for ${manifest.stages.length} stages (give one per stage, or name each stage's device: ${manifest.stages.map((s) => s.device ?? "?").join(", ")})`,
    );
  return [...workers];
}

/**
 * Deploys a split model on running workers: checks each worker's health, token and version (a one-line
 * RuntimeFault such as `worker w1 at 127.0.0.1:5000: unreachable (ECONNREFUSED)` when one is wrong),
 * sends each stage its model bytes and sha256 and where its outputs go, and waits until every stage is
 * loaded. Returns the {@link Pipeline}; call `close()` when done.
 */
export async function deploy(
  source: DeploySource,
  workers: readonly WorkerAddress[],
  opts: DeployOptions = {},
): Promise<Pipeline> {
  const { manifest, dir } = typeof source === "string" ? readManifest(source) : source;
  const assigned = assignStages(manifest, workers);
  const timeoutMs = opts.timeoutMs ?? 30000;
  const transport = makeTransport(opts.transport ?? "tcp", { maxFrameBytes: opts.maxFrameBytes });
  const deployment = randomUUID();
  const delay = opts.linkDelayMs ?? (() => 0);

  const distinct = [...new Map(assigned.map((w) => [w.name, w])).values()];
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
  settled.forEach((s, i) => {
    const w = distinct[i];
    if (s.status === "fulfilled")
      links.set(w.name, {
        name: w.name,
        endpoint: w.endpoint,
        conn: s.value.conn,
        stages: [],
        pid: s.value.welcome.pid,
        threads: s.value.welcome.threads,
        statsWaiters: [],
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
  const stageLink = assigned.map((w) => links.get(w.name)!);
  manifest.stages.forEach((s, i) => {
    stageLink[i].stages.push(s.index ?? i);
  });
  const maxInFlight = opts.maxInFlight ?? 2 * manifest.stages.length;
  const pipeline = new Pipeline(manifest, links, stageLink, maxInFlight, timeoutMs);
  for (const l of links.values()) l.conn.delayMs = delay("coordinator", l.name);

  const modelOutputs = new Set(manifest.outputs.map((o) => o.name));
  const specOf = (name: string): TensorSpec =>
    manifest.tensors[name] ??
    manifest.inputs.find((i) => i.name === name) ??
    (() => {
      throw new ArgumentError(`manifest: tensor '${name}' has no type in 'tensors'`, { tensor: name });
    })();
  try {
    await Promise.all(
      manifest.stages.map(async (stage, i) => {
        const link = stageLink[i];
        const routes: Record<string, Route[]> = {};
        for (const out of stage.outputs) {
          const rs: Route[] = [];
          const seen = new Set<string>();
          manifest.stages.forEach((later, j) => {
            if (j <= i || !later.inputs.includes(out) || seen.has(stageLink[j].name)) return;
            seen.add(stageLink[j].name);
            const to = stageLink[j];
            rs.push({
              to: "worker",
              worker: to.name,
              endpoint: to.endpoint,
              delayMs: delay(link.name, to.name),
            });
          });
          if (modelOutputs.has(out)) rs.push({ to: "coordinator" });
          routes[out] = rs;
        }
        const file = join(dir, stage.file);
        let bytes: Uint8Array;
        try {
          bytes = readFileSync(file);
        } catch (err) {
          throw new ArgumentError(`${file}: cannot read stage ${i} (${errorMessage(err)})`, {
            file,
            stage: i,
          });
        }
        const msg: LoadMsg = {
          t: "load",
          deployment,
          stage: stage.index ?? i,
          worker: link.name,
          file: stage.file,
          sha256: stage.sha256,
          inputs: stage.inputs.map(specOf),
          outputs: stage.outputs,
          routes,
          token: opts.token ?? "",
          coordinatorDelayMs: delay(link.name, "coordinator"),
        };
        const key = `${link.name}/${msg.stage}`;
        const loaded = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new RuntimeFault(
                  "WORKER",
                  `worker ${link.name} at ${link.endpoint}: stage ${msg.stage} not loaded within ${timeoutMs} ms`,
                  {
                    device: link.name,
                    stage: msg.stage,
                  },
                ),
              ),
            timeoutMs,
          );
          pipeline.loadWaiters.set(key, {
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          });
        });
        await link.conn.send({ type: "control", requestId: 0, msg: { ...msg }, payload: bytes });
        await loaded;
        pipeline.loadWaiters.delete(key);
      }),
    );
  } catch (err) {
    await pipeline.close();
    if (err instanceof CleaveError) throw err;
    throw new RuntimeFault("WORKER", `deploy failed: ${errorMessage(err)}`);
  }
  log(`deployed ${manifest.stages.length} stages on ${links.size} workers`);
  return pipeline;
}
