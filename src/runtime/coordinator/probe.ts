import { RuntimeFault } from "../../errors.js";
import { WaiterMap } from "../deadline.js";
import { connectWorker } from "../transport/handshake.js";
import { summarizeLatencies } from "../latency.js";
import type { Connection, TlsConfig, TransportName } from "../transport/transport.js";
import { makeTransport } from "../transport/transports.js";

/** Options of {@link probeWorker}. */
export interface ProbeOptions {
  token?: string;
  transport?: TransportName;
  /** TLS, as the worker was started with (tcp only). */
  tls?: TlsConfig;
  /** Small-message round trips to time (default 20). */
  pings?: number;
  /** Bytes sent per bandwidth round (default 16 MiB, in 1 MiB frames). */
  bytes?: number;
  /** Bandwidth rounds; the best is kept (default 3). */
  rounds?: number;
  /** Deadline of every exchange, ms (default 10000). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What a probe measured between this process and a worker. */
export interface ProbeResult {
  endpoint: string;
  /** The worker's own name and cleave version. */
  worker: string;
  version: string;
  /** Round-trip time of a small message, ms. */
  rttMs: { p50: number; min: number; mean: number };
  /** Upload bandwidth to the worker, bytes/s and MiB/s (best round). */
  bytesPerSecond: number;
  mibPerSecond: number;
  /** Link figures in the cluster file's units: bandwidth bytes/s, one-way latency s (half the p50 RTT). */
  link: { bandwidth: number; latency: number };
}

/** Sends ping `id` and waits for its pong (matched by id), at most `timeoutMs`. */
function pingOnce(
  conn: Connection,
  endpoint: string,
  id: number,
  timeoutMs: number,
  waiters: WaiterMap<number, void>,
  signal?: AbortSignal,
): Promise<void> {
  const w = waiters.add(id, {
    ms: timeoutMs,
    signal,
    timeout: () => new RuntimeFault("WORKER", `${endpoint}: no answer to a ping within ${timeoutMs} ms`),
  });
  conn.send({ type: "control", requestId: id, msg: { t: "ping" } }).catch((err) => w.reject(err));
  return w.promise;
}

/**
 * Measures round-trip time and bandwidth to a running worker: timed pings, then rounds of 1 MiB sink
 * frames followed by a ping (the pong comes back once every byte before it was received).
 * Measured links can replace declared ones in a cluster before planning.
 */
export async function probeWorker(endpoint: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 10000;
  const transport = makeTransport(opts.transport ?? "tcp", { tls: opts.tls });
  const { conn, welcome } = await connectWorker(transport, endpoint, {
    token: opts.token,
    role: "probe",
    from: "probe",
    timeoutMs,
    signal: opts.signal,
  });
  const waiters = new WaiterMap<number, void>();
  conn.onFrame((f) => {
    if (f.type === "control" && f.msg.t === "pong") waiters.resolve(f.requestId, undefined);
  });
  conn.onClose((err) =>
    waiters.rejectAll(
      new RuntimeFault("WORKER", `${endpoint}: connection lost (${err?.message ?? "closed"})`),
    ),
  );
  let id = 1;
  try {
    const rtts: number[] = [];
    for (let i = 0; i < (opts.pings ?? 20); i++) {
      const t0 = performance.now();
      await pingOnce(conn, endpoint, id++, timeoutMs, waiters, opts.signal);
      rtts.push(performance.now() - t0);
    }
    const rtt = summarizeLatencies(rtts);
    const total = opts.bytes ?? 16 * 2 ** 20;
    const chunk = new Uint8Array(Math.min(total, 2 ** 20));
    let best = 0;
    for (let r = 0; r < (opts.rounds ?? 3); r++) {
      const t0 = performance.now();
      const sends: Promise<void>[] = [];
      for (let sent = 0; sent < total; sent += chunk.byteLength)
        sends.push(conn.send({ type: "control", requestId: 0, msg: { t: "sink" }, payload: chunk }));
      await Promise.all(sends);
      await pingOnce(conn, endpoint, id++, timeoutMs, waiters, opts.signal);
      // The final ping's return trip is not part of the upload.
      const seconds = Math.max(1e-6, (performance.now() - t0 - rtt.p50 / 2) / 1000);
      best = Math.max(best, total / seconds);
    }
    return {
      endpoint,
      worker: welcome.name,
      version: welcome.version,
      rttMs: { p50: rtt.p50, min: rtt.min, mean: rtt.mean },
      bytesPerSecond: best,
      mibPerSecond: best / 2 ** 20,
      link: { bandwidth: best, latency: rtt.p50 / 2000 },
    };
  } finally {
    conn.close();
  }
}
