import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { errorMessage, RuntimeFault } from "../../errors.js";
import { VERSION } from "../../version.js";
import type { Frame } from "./frame.js";
import {
  AUTH_MESSAGE,
  type AuthMsg,
  type ChallengeMsg,
  checkMessage,
  HELLO_MESSAGE,
  type HelloMsg,
  type RejectMsg,
  type Role,
  type WelcomeMsg,
} from "./protocol.js";
import { waiter } from "../deadline.js";
import type { Connection, Transport } from "./transport.js";

/**
 * Largest frame either side accepts before the other has proved it holds the token, bytes: a handshake
 * message is a few hundred bytes, so a peer without the token can never make the other allocate more.
 */
export const HANDSHAKE_MAX_FRAME_BYTES = 4096;

/**
 * The handshake, on every connection to a worker (C: the side that connected, W: the worker; K: the token):
 *
 *     C -> W  hello     {version, role, from, deployment, nonce: Nc}
 *     W -> C  challenge {version, nonce: Ns}               (or reject: version, protocol)
 *     C -> W  auth      {proof: HMAC-SHA256(K, "cleave-client" | transcript)}
 *     W -> C  welcome   {..., proof: HMAC-SHA256(K, "cleave-worker" | transcript)}   (or reject: token, busy)
 *
 * where the transcript is the version, role, name, deployment and both nonces. Each side proves it holds K
 * without sending it, in clear or hashed; a fresh nonce from each side makes a recorded exchange useless on
 * another connection (replay). A client with a token refuses a worker that cannot prove it holds the same.
 */
function proof(token: string, side: "client" | "worker", h: HelloMsg, serverNonce: string): string {
  const transcript = JSON.stringify([
    `cleave-${side}`,
    h.version,
    h.role,
    h.from,
    h.deployment ?? "",
    h.nonce,
    serverNonce,
  ]);
  return createHmac("sha256", token).update(transcript).digest("hex");
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** A fresh nonce: 32 random bytes, hex. */
function nonce(): string {
  return randomBytes(32).toString("hex");
}

/** Options of {@link connectWorker}. */
export interface ConnectWorkerOptions {
  /** The shared secret; never sent, only proved (absent or "": for a worker started without one). */
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
 * `busy (...)`, `does not prove it holds the token` or `no answer to the handshake within N ms`.
 */
export async function connectWorker(
  transport: Transport,
  endpoint: string,
  opts: ConnectWorkerOptions,
): Promise<WorkerLink> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const t0 = performance.now();
  const conn = await transport.connect(endpoint, { timeoutMs, signal: opts.signal });
  // Until the worker proved itself, it may not make this side allocate more than a handshake frame.
  const frameLimit = conn.frameLimit;
  conn.frameLimit = Math.min(frameLimit, HANDSHAKE_MAX_FRAME_BYTES);
  const version = opts.version ?? VERSION;
  const token = opts.token ?? "";
  const hello: HelloMsg = {
    t: "hello",
    version,
    role: opts.role,
    from: opts.from,
    ...(opts.deployment !== undefined ? { deployment: opts.deployment } : {}),
    nonce: nonce(),
  };
  let serverNonce: string | undefined;
  const w = waiter<WorkerLink>({
    ms: Math.max(1, timeoutMs - (performance.now() - t0)),
    signal: opts.signal,
    timeout: () =>
      new RuntimeFault(
        "WORKER",
        `${endpoint}: no answer to the handshake within ${timeoutMs} ms (is it a cleave worker?)`,
      ),
    aborted: (reason) =>
      new RuntimeFault("WORKER", `${endpoint}: handshake aborted (${errorMessage(reason)})`),
  });
  // Whichever way the handshake failed, the connection goes with it.
  w.promise.catch(() => conn.close());
  const settled = () => w.settled;
  const fail = (message: string) => w.reject(new RuntimeFault("WORKER", `${endpoint}: ${message}`));
  const send = (msg: HelloMsg | AuthMsg) =>
    conn.send({ type: "control", requestId: 0, msg: { ...msg } }).catch((err) => fail(errorMessage(err)));
  conn.onClose((err) => fail(`closed the connection during the handshake${err ? ` (${err.message})` : ""}`));
  conn.onFrame((f) => {
    if (settled()) return;
    if (f.type !== "control") return fail("sent a tensor instead of a handshake answer");
    const m = f.msg;
    if (m.t === "reject") {
      const r = m as unknown as RejectMsg;
      if (r.reason === "token") return fail("wrong token (the worker refused the handshake)");
      if (r.reason === "version") return fail(`runs cleave ${String(r.version)}, this is ${version}`);
      return fail(
        `${r.reason === "busy" ? "busy" : "refused the handshake"} (${String(r.message).slice(0, 300)})`,
      );
    }
    if (serverNonce === undefined) {
      if (m.t !== "challenge") return fail(`answered '${String(m.t).slice(0, 32)}' to the handshake`);
      const c = m as unknown as ChallengeMsg;
      if (c.version !== version) return fail(`runs cleave ${String(c.version)}, this is ${version}`);
      if (typeof c.nonce !== "string" || !/^[0-9a-f]{64}$/.test(c.nonce))
        return fail("sent a malformed challenge");
      serverNonce = c.nonce;
      void send({ t: "auth", proof: proof(token, "client", hello, serverNonce) });
      return;
    }
    if (m.t !== "welcome") return fail(`answered '${String(m.t).slice(0, 32)}' to the handshake`);
    const wm = m as unknown as WelcomeMsg;
    if (wm.version !== version) return fail(`runs cleave ${String(wm.version)}, this is ${version}`);
    if (
      token !== "" &&
      !(typeof wm.proof === "string" && sameHex(wm.proof, proof(token, "worker", hello, serverNonce)))
    )
      return fail("does not prove it holds the token (not the worker it claims to be, or another token)");
    conn.frameLimit = frameLimit;
    w.resolve({ conn, welcome: wm });
  });
  void send(hello);
  return w.promise;
}

/** What the worker side of a handshake needs to know. */
export interface AcceptHandshakeOptions {
  /** The worker's token; "" accepts any proof (a worker started --insecure, or on loopback without one). */
  token: string;
  version: string;
  /** The welcome to send once the client proved itself (its `proof` is filled in here). */
  welcome: () => Omit<WelcomeMsg, "proof">;
  /**
   * Called with the checked hello once the client proved itself; returns a reason to refuse it anyway
   * (`busy`), or undefined to accept.
   */
  admit: (hello: HelloMsg) => { reason: RejectMsg["reason"]; message: string } | undefined;
  /** Whether to check the client's proof now (false while its address is backing off: answered busy). */
  mayTry: () => { ok: true } | { ok: false; message: string };
  /** Called once when the client's proof is wrong. */
  onWrongToken: () => void;
  /** Called once with the outcome: the accepted hello, or the reason the connection is being closed. */
  done: (result: { hello: HelloMsg } | { refused: string }) => void;
}

/**
 * Runs the worker's side of the handshake on a fresh connection (whose frame limit the caller has set to
 * HANDSHAKE_MAX_FRAME_BYTES). Sets the connection's frame handler; when `done` reports a hello, the caller
 * sets its own handler synchronously, so no frame that follows is lost.
 */
export function acceptHandshake(conn: Connection, opts: AcceptHandshakeOptions): void {
  let hello: HelloMsg | undefined;
  let serverNonce: string | undefined;
  let finished = false;
  const refuse = (reason: RejectMsg["reason"], message: string) => {
    if (finished) return;
    finished = true;
    const m: RejectMsg = { t: "reject", reason, message, version: opts.version };
    conn.send({ type: "control", requestId: 0, msg: { ...m } }).then(
      () => setTimeout(() => conn.close(), 50),
      () => conn.close(),
    );
    opts.done({ refused: message });
  };
  conn.onFrame((f: Frame) => {
    if (finished) return;
    if (f.type !== "control") return refuse("protocol", "expected hello first");
    if (hello === undefined) {
      if (f.msg.t !== "hello") return refuse("protocol", "expected hello first");
      // The version first, so a peer of another version learns why even if the rest changed shape.
      if (f.msg.version !== opts.version)
        return refuse("version", `peer runs cleave ${String(f.msg.version).slice(0, 64)}`);
      const h = checkMessage(HELLO_MESSAGE, f.msg);
      if (!h.ok) return refuse("protocol", `malformed ${h.why}`);
      hello = h.msg as HelloMsg;
      serverNonce = nonce();
      const c: ChallengeMsg = { t: "challenge", version: opts.version, nonce: serverNonce };
      conn.send({ type: "control", requestId: 0, msg: { ...c } }).catch(() => conn.close());
      return;
    }
    const a = checkMessage(AUTH_MESSAGE, f.msg);
    if (!a.ok) return refuse("protocol", `malformed ${a.why}`);
    const may = opts.mayTry();
    if (!may.ok) return refuse("busy", may.message);
    if (opts.token !== "" && !sameHex(a.msg.proof, proof(opts.token, "client", hello, serverNonce!))) {
      opts.onWrongToken();
      return refuse("token", "wrong token");
    }
    const no = opts.admit(hello);
    if (no) return refuse(no.reason, no.message);
    finished = true;
    const w: WelcomeMsg = { ...opts.welcome(), proof: proof(opts.token, "worker", hello, serverNonce!) };
    conn.send({ type: "control", requestId: 0, msg: { ...w } }).catch(() => conn.close());
    opts.done({ hello });
  });
}
