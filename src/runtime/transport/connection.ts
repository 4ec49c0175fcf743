import { RuntimeFault } from "../../errors.js";
import { type Frame, decodeFrame, encodeFrame, frameSize } from "./frame.js";
import type { EventEmitter } from "node:events";
import { type ConnectOptions, type Connection, parseEndpoint } from "./transport.js";

/**
 * Behaviour every transport's connection shares: frame encoding, the size limit, queueing of frames
 * that arrive before a handler is set, user-space send delay, byte counters and close reporting.
 * Subclasses implement `write` (one encoded frame) and `shutdown`, and call `received`/`ended`.
 */
export abstract class BaseConnection implements Connection {
  delayMs = 0;
  peer?: string;
  bytesSent = 0;
  bytesReceived = 0;
  private isClosed = false;
  private frameHandler?: (f: Frame) => void;
  private closeHandler?: (err?: Error) => void;
  private readonly queued: Frame[] = [];
  private closeError?: Error;
  private closeReported = false;
  /** Promise chain of delayed sends, so a delay keeps frame order. */
  private delayed: Promise<void> = Promise.resolve();

  private limit: number;

  constructor(
    readonly remote: string,
    protected readonly maxFrameBytes: number,
  ) {
    this.limit = maxFrameBytes;
  }

  /** The peer's name for messages: `peer` when known, else the remote address. */
  protected get label(): string {
    return this.peer ?? this.remote;
  }

  get frameLimit(): number {
    return this.limit;
  }

  set frameLimit(bytes: number) {
    this.limit = Math.min(bytes, this.maxFrameBytes);
    this.limitChanged(this.limit);
  }

  /** Subclasses whose socket library checks the size itself pass the new limit on. */
  protected limitChanged(_bytes: number): void {}

  abstract pause(): void;
  abstract resume(): void;

  get closed(): boolean {
    return this.isClosed;
  }

  /** Writes one encoded frame of `size` bytes; resolves when the transport can take more. */
  protected abstract write(parts: Uint8Array[], size: number): Promise<void>;
  /** Closes the underlying socket. */
  protected abstract shutdown(): void;

  send(frame: Frame): Promise<void> {
    if (this.isClosed)
      return Promise.reject(
        new RuntimeFault("RUNTIME", `${this.label}: connection closed${this.reasonSuffix()}`),
      );
    let parts: Uint8Array[];
    try {
      parts = encodeFrame(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    const size = frameSize(parts);
    if (size > this.maxFrameBytes)
      return Promise.reject(
        new RuntimeFault(
          "RUNTIME",
          `${this.label}: frame of ${size} bytes${frame.type === "tensor" ? ` (tensor '${frame.name}')` : ""} exceeds the limit of ${this.maxFrameBytes} bytes; refused`,
          frame.type === "tensor" ? { tensor: frame.name } : {},
        ),
      );
    this.bytesSent += size;
    if (this.delayMs > 0) {
      const delay = this.delayMs;
      const due = performance.now() + delay;
      this.delayed = this.delayed.then(async () => {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (!this.isClosed) await this.write(parts, size).catch(() => {});
      });
      return Promise.resolve();
    }
    return this.write(parts, size);
  }

  onFrame(handler: (frame: Frame) => void): void {
    this.frameHandler = handler;
    while (this.queued.length > 0 && this.frameHandler === handler) handler(this.queued.shift()!);
  }

  onClose(handler: (err?: Error) => void): void {
    this.closeHandler = handler;
    if (this.isClosed) this.reportClose();
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.shutdown();
    this.reportClose();
  }

  /** Subclasses call this with one complete frame's bytes. A malformed frame closes the connection. */
  protected received(buf: Uint8Array): void {
    if (this.isClosed) return;
    if (buf.byteLength > this.limit) {
      this.fail(
        new RuntimeFault(
          "RUNTIME",
          `${this.label}: incoming frame of ${buf.byteLength} bytes exceeds the limit of ${this.limit} bytes; refused`,
        ),
      );
      return;
    }
    this.bytesReceived += buf.byteLength;
    let frame: Frame;
    try {
      frame = decodeFrame(buf, this.limit);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (frame.type === "control" && frame.msg.t === CLOSE_NOTICE) {
      this.fail(new RuntimeFault("RUNTIME", `${this.label}: ${String(frame.msg.message)}`));
      return;
    }
    if (this.frameHandler) this.frameHandler(frame);
    else this.queued.push(frame);
  }

  /** Subclasses call this when the socket ended, with the reason when it was not clean. */
  protected ended(err?: Error): void {
    if (this.closeError === undefined && err !== undefined) this.closeError = err;
    if (this.isClosed) {
      this.reportClose();
      return;
    }
    this.isClosed = true;
    this.reportClose();
  }

  /** Closes the connection because of `err` (reported to the close handler). */
  protected fail(err: Error): void {
    if (this.closeError === undefined) this.closeError = err;
    if (!this.isClosed) {
      this.isClosed = true;
      this.shutdown();
    }
    this.reportClose();
  }

  private reasonSuffix(): string {
    return this.closeError ? ` (${this.closeError.message})` : "";
  }

  private reportClose(): void {
    if (this.closeReported || !this.closeHandler) return;
    this.closeReported = true;
    this.closeHandler(this.closeError);
  }
}

/**
 * Tag of the control frame a transport sends just before it closes a connection on purpose (an
 * oversized frame), so the peer learns why instead of seeing a bare close. Never delivered to handlers.
 */
export const CLOSE_NOTICE = "transport-close";

/** The one-line error for a failed connect: `host:port: unreachable (ECONNREFUSED)`. */
export function connectError(endpoint: string, err: unknown): RuntimeFault {
  const code = (err as { code?: string }).code;
  const why = code ?? (err instanceof Error ? err.message : String(err));
  return new RuntimeFault("WORKER", `${endpoint}: unreachable (${why})`, {}, { cause: err });
}

/** A connection attempt in progress, as {@link dialWithin} drives it. */
export interface Dialing<C> {
  /** Emits "error" on failure and `readyEvent` once connected. */
  emitter: EventEmitter;
  readyEvent: string;
  /** The connection, once ready. */
  ready(): C;
  /** Tears the attempt down after a failure, timeout or abort. */
  discard(): void;
}

/**
 * Connects to `host:port` with the options' deadline (default 5000 ms) and abort signal: `dial` starts the
 * attempt, and every failure (bad endpoint, refused, timed out, aborted) becomes one RuntimeFault
 * `<endpoint>: unreachable (...)`. Shared by every transport.
 */
export function dialWithin<C>(
  endpoint: string,
  opts: ConnectOptions,
  dial: (host: string, port: number) => Dialing<C>,
): Promise<C> {
  let addr: { host: string; port: number };
  try {
    addr = parseEndpoint(endpoint);
  } catch (err) {
    return Promise.reject(connectError(endpoint, err));
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const d = dial(addr.host, addr.port);
    let settled = false;
    const done = (err?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      d.emitter.off("error", done);
      if (err !== undefined) {
        d.discard();
        reject(connectError(endpoint, err));
      } else resolve(d.ready());
    };
    const onAbort = () => done(opts.signal?.reason ?? new Error("aborted"));
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    d.emitter.once("error", done);
    d.emitter.once(d.readyEvent, () => done());
  });
}
