import { Worker as Thread } from "node:worker_threads";
import { errorMessage } from "../../errors.js";
import { createSession, type ort } from "../../onnx/ort.js";
import {
  cpuMs,
  type ThreadReply,
  type ThreadRequest,
  type WireTensor,
  wireTensor,
  wireToTensor,
} from "./stage-wire.js";

/**
 * How a worker runs its stages: each on a thread of its own, on the thread that does the I/O, or (auto, the
 * default) on a thread only when the worker runs other stages of the deployment beside it.
 */
export type RunMode = "auto" | "thread" | "inline";

/** One completed (or failed) run of a stage. */
export interface StageRun {
  outputs: Record<string, ort.Tensor>;
  /** Wall time of the run itself, ms. */
  ms: number;
  /** CPU time of the process during the run (every thread), ms. */
  cpuMs: number;
}

/** A run that failed: onnxruntime's message, and the time it took before failing. */
export class StageRunError extends Error {
  constructor(
    message: string,
    /** Wall time of the run, ms. */
    readonly ms: number,
    /** CPU time of the process during the run, ms. */
    readonly cpuMs: number,
  ) {
    super(message);
  }
}

/** A stage's onnxruntime session, wherever it runs. */
export interface StageRunner {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * True when a run holds the calling thread (inline): nothing else the worker does (socket reads, pongs,
   * other stages) happens until it ends.
   */
  readonly blocking: boolean;
  /**
   * Runs the stage on `feeds`. `handOver` names the feeds whose whole buffers nothing else reads: a thread
   * runner moves those to its thread instead of copying them (the caller's views become empty) and gives each
   * back to `returned` once the run is over, as a new ArrayBuffer object. The other feeds' buffers may be
   * reused once the promise settles. Rejects with a {@link StageRunError} (onnxruntime's message) on failure.
   */
  run(
    feeds: Record<string, ort.Tensor>,
    outputs: readonly string[],
    handOver: ReadonlySet<string>,
    returned: (buffer: ArrayBuffer) => void,
  ): Promise<StageRun>;
  /** Releases the session (and ends the thread), after the run in progress. */
  release(): Promise<void>;
}

/** Where a stage model comes from: its bytes, or a path (a stage with external data beside it). */
export interface StageSource {
  model: Uint8Array | string;
  threads: number;
  /** The stage file's name, for errors. */
  file: string;
  /** Run below the worker's other threads in priority (a thread runner only; see `LoadMsg.background`). */
  background?: boolean;
}

/** Opens a stage inline or on a thread. Rejects with a one-line message (onnxruntime's) when it cannot load. */
export function openStage(src: StageSource, mode: "thread" | "inline"): Promise<StageRunner> {
  return mode === "inline" ? InlineRunner.open(src) : ThreadRunner.open(src);
}

/**
 * A stage run on the calling thread. onnxruntime-node runs a session synchronously in a setImmediate callback
 * queued by run(); one queued just before it fires right before that run, so the window measured holds the
 * run itself and not the socket reads the event loop handles before reaching it.
 */
class InlineRunner implements StageRunner {
  readonly blocking = true;
  private constructor(private readonly session: ort.InferenceSession) {}

  static async open(src: StageSource): Promise<StageRunner> {
    return new InlineRunner(await createSession(src.model, { threads: src.threads, source: src.file }));
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(
    feeds: Record<string, ort.Tensor>,
    outputs: readonly string[],
    _handOver: ReadonlySet<string>,
    _returned: (buffer: ArrayBuffer) => void,
  ): Promise<StageRun> {
    let t0 = performance.now();
    let c0 = cpuMs();
    setImmediate(() => {
      t0 = performance.now();
      c0 = cpuMs();
    });
    try {
      const out = await this.session.run(feeds, [...outputs]);
      return { outputs: out as Record<string, ort.Tensor>, ms: performance.now() - t0, cpuMs: cpuMs() - c0 };
    } catch (err) {
      throw new StageRunError(errorMessage(err), performance.now() - t0, cpuMs() - c0);
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

interface PendingRun {
  resolve: (r: StageRun) => void;
  reject: (e: Error) => void;
  /** Where the buffers moved to the thread for this run go when it answers. */
  returned: (buffer: ArrayBuffer) => void;
}

/**
 * A stage run on a thread of its own, so the worker's I/O thread keeps reading frames, answering pings and
 * relaying tensors while it runs, and stages of one worker run at the same time (measured in bench/run-mode.ts).
 * Inputs whose buffers nothing else reads move to the thread and back (no copy); the others are copied.
 */
class ThreadRunner implements StageRunner {
  readonly blocking = false;
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 1;
  private dead?: string;
  private closing?: Promise<void>;

  private constructor(
    private readonly thread: Thread,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    thread.on("message", (m: ThreadReply) => this.answer(m));
    thread.on("error", (err) => this.end(`stage thread failed: ${errorMessage(err)}`));
    thread.on("exit", (code) => this.end(`stage thread exited (code ${code})`));
  }

  static open(src: StageSource): Promise<StageRunner> {
    // Run from TypeScript source (under tsx) the entry is the .ts file beside this one.
    const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
    const thread = new Thread(new URL(`./stage-thread-main.${ext}`, import.meta.url));
    // The thread never keeps the process alive by itself: the worker's sockets do while it serves.
    thread.unref();
    return new Promise<StageRunner>((resolve, reject) => {
      const onError = (err: Error) => fail(`stage thread failed: ${errorMessage(err)}`);
      const onExit = (code: number) => fail(`stage thread exited (code ${code}) while loading ${src.file}`);
      // Only these listeners go: the thread's own (which keep its port running) stay.
      const detach = () => {
        thread.off("error", onError);
        thread.off("exit", onExit);
        thread.off("message", onMessage);
      };
      const fail = (message: string) => {
        detach();
        void thread.terminate();
        reject(new Error(message));
      };
      const onMessage = (m: ThreadReply) => {
        detach();
        if (m.t === "opened") resolve(new ThreadRunner(thread, m.inputNames, m.outputNames));
        else fail(m.t === "open-failed" ? m.message : `stage thread answered ${m.t} to open`);
      };
      thread.on("error", onError);
      thread.on("exit", onExit);
      thread.on("message", onMessage);
      const msg: ThreadRequest = {
        t: "open",
        model: src.model,
        threads: src.threads,
        file: src.file,
        ...(src.background ? { background: true } : {}),
      };
      thread.postMessage(msg);
    });
  }

  run(
    feeds: Record<string, ort.Tensor>,
    outputs: readonly string[],
    handOver: ReadonlySet<string>,
    returned: (buffer: ArrayBuffer) => void,
  ): Promise<StageRun> {
    if (this.dead !== undefined) return Promise.reject(new StageRunError(this.dead, 0, 0));
    const id = this.nextId++;
    const wire: WireTensor[] = [];
    const moved: ArrayBuffer[] = [];
    const copies: ArrayBuffer[] = [];
    for (const [name, t] of Object.entries(feeds)) {
      const w = wireTensor(name, t);
      const v = t.data as ArrayBufferView;
      // A buffer moves only whole, and only when nothing else reads it; otherwise the run gets a copy.
      if (handOver.has(name) && !moved.includes(w.buffer)) moved.push(w.buffer);
      else {
        const copy = new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
        Object.assign(w, { buffer: copy.buffer, offset: 0 });
        copies.push(copy.buffer);
      }
      wire.push(w);
    }
    return new Promise<StageRun>((resolve, reject) => {
      // A run in progress keeps the process alive (an idle thread does not).
      if (this.pending.size === 0) this.thread.ref();
      this.pending.set(id, { resolve, reject, returned });
      const msg: ThreadRequest = { t: "run", id, feeds: wire, outputs: [...outputs], giveBack: moved };
      this.thread.postMessage(msg, [...moved, ...copies]);
    });
  }

  private answer(m: ThreadReply): void {
    if (m.t !== "ran" && m.t !== "run-failed") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.thread.unref();
    for (const b of m.giveBack) p.returned(b);
    if (m.t === "ran")
      p.resolve({
        outputs: Object.fromEntries(m.outputs.map((w) => [w.name, wireToTensor(w)])),
        ms: m.ms,
        cpuMs: m.cpuMs,
      });
    else p.reject(new StageRunError(m.message, m.ms, m.cpuMs));
  }

  /** The thread is gone: every run waiting on it fails, and so does every later one. */
  private end(why: string): void {
    this.dead ??= why;
    for (const p of this.pending.values()) p.reject(new StageRunError(this.dead, 0, 0));
    this.pending.clear();
  }

  release(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.dead !== undefined) {
        resolve();
        return;
      }
      // Held until the thread is gone, so that the run in progress ends before the process may exit.
      this.thread.ref();
      const timer = setTimeout(() => void this.thread.terminate(), 5000);
      timer.unref();
      this.thread.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      this.thread.postMessage({ t: "close" } satisfies ThreadRequest);
    });
    return this.closing;
  }
}
