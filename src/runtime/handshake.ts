import { errorMessage, RuntimeFault } from "../errors.js";
import { VERSION } from "../version.js";
import type { HelloMsg, RejectMsg, Role, WelcomeMsg } from "./protocol.js";
import type { Connection, Transport } from "./transport.js";

/** Options of {@link connectWorker}. */
export interface ConnectWorkerOptions {
  token?: string;
  role: Role;
  /** The sender's name, shown in the worker's log. */
  from: string;
  deployment?: string;
  /** Time for connect plus handshake, ms (default 5000). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The version to announce (default this cleave's VERSION). */
  version?: string;
}

/** A connection whose handshake the worker accepted. */
export interface WorkerLink {
  conn: Connection;
  welcome: WelcomeMsg;
}

/**
 * Connects to a worker and performs the handshake. Rejects with a one-line RuntimeFault starting with
 * the endpoint: `unreachable (ECONNREFUSED)`, `wrong token`, `runs cleave 0.0.9, this is 0.1.0`,
 * `busy (...)`, or `no answer to the handshake within N ms`.
 */
export async function connectWorker(
  transport: Transport,
  endpoint: string,
  opts: ConnectWorkerOptions,
): Promise<WorkerLink> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const t0 = performance.now();
  const conn = await transport.connect(endpoint, { timeoutMs, signal: opts.signal });
  const version = opts.version ?? VERSION;
  const hello: HelloMsg = {
    t: "hello",
    version,
    token: opts.token ?? "",
    role: opts.role,
    from: opts.from,
    deployment: opts.deployment,
  };
  return new Promise<WorkerLink>((resolve, reject) => {
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.close();
      reject(new RuntimeFault("WORKER", `${endpoint}: ${message}`));
    };
    const remaining = Math.max(1, timeoutMs - (performance.now() - t0));
    const timer = setTimeout(
      () => fail(`no answer to the handshake within ${timeoutMs} ms (is it a cleave worker?)`),
      remaining,
    );
    conn.onClose((err) =>
      fail(`closed the connection during the handshake${err ? ` (${err.message})` : ""}`),
    );
    conn.onFrame((f) => {
      if (settled) return;
      if (f.type !== "control") return fail("sent a tensor instead of a handshake answer");
      const m = f.msg;
      if (m.t === "reject") {
        const r = m as unknown as RejectMsg;
        if (r.reason === "token") return fail("wrong token (the worker refused the handshake)");
        if (r.reason === "version") return fail(`runs cleave ${r.version}, this is ${version}`);
        return fail(`${r.reason === "busy" ? "busy" : "refused the handshake"} (${r.message})`);
      }
      if (m.t !== "welcome") return fail(`answered '${m.t}' to the handshake`);
      const w = m as unknown as WelcomeMsg;
      if (w.version !== version) return fail(`runs cleave ${w.version}, this is ${version}`);
      settled = true;
      clearTimeout(timer);
      resolve({ conn, welcome: w });
    });
    conn.send({ type: "control", requestId: 0, msg: { ...hello } }).catch((err) => fail(errorMessage(err)));
  });
}
