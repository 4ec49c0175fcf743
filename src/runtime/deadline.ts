import { errorMessage, RuntimeFault } from "../errors.js";

/**
 * Deadlines and waiters for replies: the one place the runtime arms a timer and an abort listener around
 * something it waits for (a request's outputs, a stats or ping reply, a stage's `loaded`, a handshake), and
 * the one place both are cleaned up when it settles, whichever way.
 */

/** Why a deadline fired: it passed, or the signal aborted (with the signal's reason). */
export type DeadlineCause = { kind: "deadline" } | { kind: "aborted"; reason: unknown };

/**
 * Calls `fire` once, `ms` from now or when `signal` aborts, whichever comes first (at once when the signal
 * has already aborted). Returns a function that disarms both; call it when the awaited thing settled.
 * `ms` of Infinity arms no timer.
 */
export function armDeadline(
  ms: number,
  fire: (cause: DeadlineCause) => void,
  signal?: AbortSignal,
): () => void {
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    if (done) return;
    disarm();
    fire({ kind: "aborted", reason: signal?.reason });
  };
  const disarm = () => {
    done = true;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  };
  if (signal?.aborted) {
    onAbort();
    return disarm;
  }
  if (Number.isFinite(ms))
    timer = setTimeout(() => {
      if (done) return;
      disarm();
      fire({ kind: "deadline" });
    }, ms);
  signal?.addEventListener("abort", onAbort, { once: true });
  return disarm;
}

/** Options of {@link waiter}. */
export interface WaiterOptions {
  /** Time to wait, ms (Infinity: no deadline). */
  ms: number;
  /** The error the waiter rejects with at the deadline. */
  timeout: () => Error;
  signal?: AbortSignal;
  /** The error it rejects with when the signal aborts (default: a RuntimeFault `aborted (reason)`). */
  aborted?: (reason: unknown) => Error;
  /** Called once when the waiter settles, whichever way (e.g. to forget it in a map). */
  onSettle?: () => void;
}

/** A reply being waited for, with a deadline: settle it with `resolve`/`reject`, or it rejects by itself. */
export interface Waiter<T> {
  readonly promise: Promise<T>;
  /** True once resolved or rejected; later calls are ignored. */
  readonly settled: boolean;
  resolve(value: T): void;
  reject(err: Error): void;
  /**
   * Restarts the deadline, `ms` from now (default: the same length), with another timeout error when given
   * (e.g. a deploy's deadline, which restarts with every chunk the worker takes).
   */
  rearm(ms?: number, timeout?: () => Error): void;
}

/**
 * A promise that settles with the reply given to `resolve`, or rejects at the deadline or when the signal
 * aborts; its timer and abort listener are removed as soon as it settles. Its promise never goes unhandled:
 * a rejection nobody awaited is dropped.
 */
export function waiter<T>(opts: WaiterOptions): Waiter<T> {
  let resolveP!: (v: T) => void;
  let rejectP!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolveP = res;
    rejectP = rej;
  });
  promise.catch(() => {});
  let settled = false;
  let timeout = opts.timeout;
  let length = opts.ms;
  let disarm = () => {};
  const settle = (f: () => void) => {
    if (settled) return;
    settled = true;
    disarm();
    f();
    opts.onSettle?.();
  };
  const fire = (cause: DeadlineCause) =>
    settle(() =>
      rejectP(
        cause.kind === "deadline"
          ? timeout()
          : (opts.aborted?.(cause.reason) ??
              new RuntimeFault("RUNTIME", `aborted (${errorMessage(cause.reason)})`)),
      ),
    );
  const w: Waiter<T> = {
    promise,
    get settled() {
      return settled;
    },
    resolve: (v) => settle(() => resolveP(v)),
    reject: (e) => settle(() => rejectP(e)),
    rearm: (ms, t) => {
      if (settled) return;
      length = ms ?? length;
      timeout = t ?? timeout;
      disarm();
      disarm = armDeadline(length, fire, opts.signal);
    },
  };
  disarm = armDeadline(length, fire, opts.signal);
  return w;
}

/**
 * Waiters by key (a request id, a `worker/stage`): a reply settles the waiter of its own key, so a waiter
 * that timed out is forgotten and can never take the reply meant for a later one.
 */
export class WaiterMap<K, T> {
  private readonly map = new Map<K, Waiter<T>>();

  /** Starts waiting for the reply of `key` (a key still waited for is refused: keys must be unique). */
  add(key: K, opts: Omit<WaiterOptions, "onSettle">): Waiter<T> {
    if (this.map.has(key)) throw new Error(`already waiting for ${String(key)}`);
    const w = waiter<T>({ ...opts, onSettle: () => this.map.delete(key) });
    if (!w.settled) this.map.set(key, w);
    return w;
  }

  /** Settles the waiter of `key` with its reply; false when nobody waits for it (late or unknown). */
  resolve(key: K, value: T): boolean {
    const w = this.map.get(key);
    w?.resolve(value);
    return w !== undefined;
  }

  /** Rejects the waiter of `key`; false when nobody waits for it. */
  reject(key: K, err: Error): boolean {
    const w = this.map.get(key);
    w?.reject(err);
    return w !== undefined;
  }

  /** Rejects every waiter (the connection or the pipeline is gone). */
  rejectAll(err: Error): void {
    for (const w of [...this.map.values()]) w.reject(err);
  }

  /** Replies still waited for. */
  get size(): number {
    return this.map.size;
  }
}
