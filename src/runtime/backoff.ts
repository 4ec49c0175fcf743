/** Options of an exponential backoff schedule, all times in ms. */
export interface BackoffOptions {
  /** First delay, ms (default 50). */
  initialMs?: number;
  /** Largest delay, ms (default 2000). */
  maxMs?: number;
  /** Growth factor per attempt (default 2). */
  factor?: number;
  /** Random spread as a fraction of the delay, 0..1 (default 0.2), so retries do not synchronise. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based), ms. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = Math.min(opts.maxMs ?? 2000, (opts.initialMs ?? 50) * (opts.factor ?? 2) ** attempt);
  const jitter = opts.jitter ?? 0.2;
  return Math.max(0, base * (1 + jitter * (Math.random() * 2 - 1)));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls `fn` until it resolves, waiting a backoff delay between attempts, at most `attempts` times
 * (default 5). `retryable` decides whether an error is worth another try (default: always). The last
 * error is rethrown; an aborted signal stops retrying at once.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: BackoffOptions & {
    attempts?: number;
    signal?: AbortSignal;
    retryable?: (err: unknown) => boolean;
  } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 5;
  for (let i = 0; ; i++) {
    try {
      return await fn(i);
    } catch (err) {
      if (i + 1 >= attempts || opts.signal?.aborted || !(opts.retryable?.(err) ?? true)) throw err;
      await sleep(backoffDelay(i, opts), opts.signal);
    }
  }
}
