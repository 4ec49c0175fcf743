import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ArgumentError, CleaveError, errorMessage } from "../errors.js";
import type { Tensors } from "../runtime/coordinator/pipeline.js";
import { formatEndpoint } from "../runtime/transport/transport.js";
import { VERSION } from "../version.js";
import { decodeInferRequest, encodeInferResponse, type ModelSignature, modelMetadata } from "./codec.js";
import type { RequestOutcome, ServeMetrics } from "./metrics.js";
import { AdmissionQueue } from "./queue.js";

/** A model the server answers for: its name, signature and how to run one request. */
export interface ServedModel {
  readonly name: string;
  readonly signature: ModelSignature;
  /** Runs one request; rejects when the signal aborts (the request's timeout). */
  infer(feeds: Tensors, opts: { signal: AbortSignal }): Promise<Tensors>;
  /** True while the model can serve (deployed, no worker lost). */
  ready(): boolean;
}

/** Options of {@link InferenceServer}. */
export interface InferenceServerOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one). */
  port?: number;
  /** Most requests admitted at once, in the pipeline or waiting for a slot; more get HTTP 429 (default 64). */
  maxAdmitted?: number;
  /** Deadline of a request that gives none, ms (default 30000). */
  timeoutMs?: number;
  /** Largest request body accepted, bytes (default 256 MiB); larger ones get HTTP 413. */
  maxBodyBytes?: number;
  /** Metrics to count requests in and to serve on `/metrics`. */
  metrics?: ServeMetrics;
}

/** Header giving a request's deadline in ms (the body's `parameters.timeout`, in microseconds, also works). */
export const TIMEOUT_HEADER = "inference-timeout-ms";

/** The one model version the server lists and accepts. */
const MODEL_VERSION = "1";

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly outcome: RequestOutcome,
  ) {
    super(message);
  }
}

/**
 * An HTTP/REST server of the Open Inference Protocol (KServe v2) for one model: health (`/v2/health/live`,
 * `/v2/health/ready`), server and model metadata (`/v2`, `/v2/models/{name}[/versions/1]`), model readiness
 * and inference (`POST /v2/models/{name}[/versions/1]/infer`, JSON or binary tensor data), and Prometheus
 * metrics on `/metrics`. At most `maxAdmitted` requests are admitted at once; one more is answered 429 at once.
 * Errors are one-line JSON `{"error": ...}`: 400 for a bad request (unknown model, wrong tensor, not JSON),
 * 429 when full, 503 while not ready, 504 past a request's deadline.
 */
export class InferenceServer {
  private server?: Server;
  private readonly queue: AdmissionQueue;
  private readonly inflight = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly model: ServedModel,
    private readonly opts: InferenceServerOptions = {},
  ) {
    this.queue = new AdmissionQueue(opts.maxAdmitted ?? 64);
  }

  /** Requests admitted now. */
  get admitted(): number {
    return this.queue.admitted;
  }

  /** Starts listening; resolves to the address really listened on. */
  async start(): Promise<{ host: string; port: number; url: string }> {
    const server = createServer((req, res) => {
      const p = this.handle(req, res).catch((err) => {
        if (!res.headersSent) send(res, 500, { error: `internal error: ${errorMessage(err)}` });
        else res.destroy();
      });
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    });
    server.keepAliveTimeout = 5000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    return { host: a.address, port: a.port, url: `http://${formatEndpoint(a.address, a.port)}` };
  }

  /**
   * Stops accepting connections and requests (ready turns false), waits for the requests in flight to be
   * answered and closes idle connections. The model's deployment is the caller's to close afterwards.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await Promise.allSettled([...this.inflight]);
    server.closeAllConnections();
    await closed;
    this.server = undefined;
  }

  private ready(): boolean {
    return !this.stopping && this.model.ready();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const path = url.split("?")[0].replace(/\/+$/, "") || "/";
    const parts = path
      .split("/")
      .filter((p) => p !== "")
      .map(decodeURIComponent);
    const method = req.method ?? "GET";
    if (this.stopping) res.setHeader("connection", "close");
    if (method === "GET" && path === "/metrics") {
      const m = this.opts.metrics;
      if (!m) return send(res, 404, { error: "no metrics on this server" });
      const text = await m.text();
      res.writeHead(200, { "content-type": m.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (parts[0] !== "v2") return send(res, 404, { error: `no such endpoint: ${method} ${path}` });
    if (method === "GET" && parts.length === 1)
      return send(res, 200, { name: "cleave", version: VERSION, extensions: ["binary_tensor_data"] });
    if (method === "GET" && parts[1] === "health" && parts.length === 3) {
      if (parts[2] === "live") return send(res, 200, { live: true });
      if (parts[2] === "ready") {
        const ready = this.ready();
        return send(res, ready ? 200 : 400, { ready });
      }
    }
    if (parts[1] === "models" && parts.length >= 3) {
      const name = parts[2];
      let rest = parts.slice(3);
      if (rest[0] === "versions") {
        if (rest.length < 2) return send(res, 404, { error: `no such endpoint: ${method} ${path}` });
        if (rest[1] !== MODEL_VERSION)
          return this.badModel(
            req,
            res,
            `model '${name}' has no version '${rest[1]}' (its versions: ${MODEL_VERSION})`,
          );
        rest = rest.slice(2);
      }
      if (name !== this.model.name)
        return this.badModel(req, res, `unknown model '${name}' (this server serves '${this.model.name}')`);
      if (method === "GET" && rest.length === 0)
        return send(res, 200, modelMetadata(this.model.name, [MODEL_VERSION], this.model.signature));
      if (method === "GET" && rest.length === 1 && rest[0] === "ready") {
        const ready = this.ready();
        return send(res, ready ? 200 : 400, { name, ready });
      }
      if (method === "POST" && rest.length === 1 && rest[0] === "infer") return this.infer(req, res);
    }
    return send(res, 404, { error: `no such endpoint: ${method} ${path}` });
  }

  /** A request for a model or version that is not served: 400, the body drained so the connection stays usable. */
  private async badModel(req: IncomingMessage, res: ServerResponse, message: string): Promise<void> {
    const t0 = performance.now();
    req.resume();
    if (req.method === "POST") this.opts.metrics?.observe("bad_request", (performance.now() - t0) / 1000);
    send(res, 400, { error: message });
  }

  private async infer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    let outcome: RequestOutcome = "ok";
    let admitted = false;
    try {
      if (!this.ready()) {
        req.resume();
        throw new HttpError(503, `model '${this.model.name}' is not ready`, "unavailable");
      }
      if (!this.queue.tryEnter()) {
        req.resume();
        res.setHeader("retry-after", "1");
        throw new HttpError(
          429,
          `server busy: ${this.queue.capacity} requests admitted already (the queue is full); retry later`,
          "queue_full",
        );
      }
      admitted = true;
      const body = await readBody(req, this.opts.maxBodyBytes ?? 256 * 1024 * 1024);
      const hl = req.headers["inference-header-content-length"];
      let headerLength: number | undefined;
      if (hl !== undefined) {
        headerLength = /^\d+$/.test(String(hl)) ? Number(hl) : Number.NaN;
        if (Number.isNaN(headerLength))
          throw new ArgumentError(`Inference-Header-Content-Length: expected a byte count, got '${hl}'`, {
            field: "Inference-Header-Content-Length",
          });
      }
      const decoded = decodeInferRequest(body, headerLength, this.model.signature);
      const timeoutMs = requestTimeout(req, decoded.timeoutMs) ?? this.opts.timeoutMs ?? 30000;
      // A timer of our own, not AbortSignal.timeout(), which refuses fractions of a ms (a 1 us `timeout`).
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      let outputs: Tensors;
      try {
        outputs = await this.model.infer(decoded.feeds, { signal: ac.signal });
      } catch (err) {
        if (ac.signal.aborted) throw new HttpError(504, `request timed out after ${timeoutMs} ms`, "timeout");
        throw err;
      } finally {
        clearTimeout(timer);
      }
      const enc = encodeInferResponse(this.model.name, undefined, decoded.id, outputs, decoded.outputs);
      const headers: Record<string, string | number> = { "content-length": enc.bytes };
      if (enc.headerLength !== undefined) {
        headers["content-type"] = "application/octet-stream";
        headers["inference-header-content-length"] = enc.headerLength;
      } else headers["content-type"] = "application/json";
      res.writeHead(200, headers);
      // One write: a JSON header and binary data written apart left the client waiting for a second segment.
      res.end(enc.parts.length === 1 ? enc.parts[0] : Buffer.concat(enc.parts, enc.bytes));
    } catch (err) {
      const [status, message, o] =
        err instanceof HttpError
          ? [err.status, err.message, err.outcome]
          : err instanceof ArgumentError
            ? [400, err.message, "bad_request" as const]
            : err instanceof CleaveError
              ? [
                  err.code === "WORKER" ? 503 : 500,
                  err.message,
                  err.code === "WORKER" ? ("unavailable" as const) : ("error" as const),
                ]
              : [500, `internal error: ${errorMessage(err)}`, "error" as const];
      outcome = o;
      send(res, status, { error: message.split("\n")[0] });
    } finally {
      if (admitted) this.queue.leave();
      this.opts.metrics?.observe(outcome, (performance.now() - t0) / 1000);
    }
  }
}

/** The deadline a request asks for, ms: the timeout header, else its `timeout` parameter; undefined: none. */
function requestTimeout(req: IncomingMessage, fromBody: number | undefined): number | undefined {
  const h = req.headers[TIMEOUT_HEADER];
  if (h === undefined) return fromBody;
  const ms = Number(h);
  if (!(ms > 0))
    throw new ArgumentError(`Inference-Timeout-Ms: expected ms > 0, got '${h}'`, { field: TIMEOUT_HEADER });
  return ms;
}

/** Reads a request body whole, refusing one over `limit` bytes (HTTP 413). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (declared > limit) {
    req.resume();
    throw new HttpError(
      413,
      `request body of ${declared} bytes is over the limit of ${limit}`,
      "bad_request",
    );
  }
  // Events rather than an async iterator: the iterator costs several promise turns per chunk.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      total += c.byteLength;
      if (total > limit) over = true;
      else chunks.push(c);
    });
    req.once("error", reject);
    req.once("end", () => {
      if (over) reject(new HttpError(413, `request body is over the limit of ${limit} bytes`, "bad_request"));
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total));
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
