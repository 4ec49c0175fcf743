import type { Connection } from "./transport.js";
import { parseEndpoint } from "./transport.js";

/** Limits a worker puts on peers that have not authenticated yet. */
export interface AdmissionLimits {
  /** Time a peer has to complete the handshake, ms (default 2000). */
  handshakeTimeoutMs?: number;
  /**
   * Connections still in their handshake (default 64), and from one address (default 8). A new one beyond
   * either evicts the oldest pending one of its own address, or of the address with the most pending: a flood
   * of idle connections from a few addresses only ever evicts itself and cannot keep a real client out.
   */
  maxPending?: number;
  maxPendingPerAddress?: number;
  /** Connections in all, authenticated or not (default 512); one beyond it is closed at once. */
  maxConnections?: number;
  /**
   * Back-off of an address whose handshakes fail on a wrong token, ms: after the n-th failure in a row the
   * address is refused (`busy`, without checking its proof) for min(max, base x 2^(n-1)) ms. Defaults
   * base 50, max 2000; the count is forgotten after `forgetMs` (default 30000) without a failure.
   */
  backoff?: { baseMs?: number; maxMs?: number; forgetMs?: number };
}

interface Failures {
  count: number;
  /** performance.now() until which the address is refused. */
  until: number;
  last: number;
}

/** Addresses remembered at most (the oldest is forgotten first), so the table itself stays bounded. */
const MAX_ADDRESSES = 4096;

/**
 * What a worker admits before trust: counts pending and total connections, runs the handshake deadline,
 * evicts the oldest pending connection when too many wait, and backs off addresses that present wrong
 * tokens. One per worker; pure bookkeeping, no I/O of its own beyond closing connections.
 */
export class Admission {
  readonly handshakeTimeoutMs: number;
  private readonly maxPending: number;
  private readonly maxPendingPerAddress: number;
  /** The same connections by address, oldest first. */
  private readonly pendingByHost = new Map<string, Set<Connection>>();
  private readonly maxConnections: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly forgetMs: number;
  /** Connections in their handshake, oldest first (a Map keeps insertion order). */
  private readonly pending = new Map<Connection, NodeJS.Timeout>();
  /** Every connection counted (pending or authenticated), so a close is counted once and only if it arrived. */
  private readonly open = new Set<Connection>();
  private readonly failures = new Map<string, Failures>();
  /** Counters for the log and tests: connections closed for each reason. */
  readonly refused = { full: 0, evicted: 0, timedOut: 0, backingOff: 0, wrongToken: 0 };

  constructor(limits: AdmissionLimits = {}) {
    this.handshakeTimeoutMs = limits.handshakeTimeoutMs ?? 2000;
    this.maxPending = limits.maxPending ?? 64;
    this.maxPendingPerAddress = limits.maxPendingPerAddress ?? 8;
    this.maxConnections = limits.maxConnections ?? 512;
    this.baseMs = limits.backoff?.baseMs ?? 50;
    this.maxMs = limits.backoff?.maxMs ?? 2000;
    this.forgetMs = limits.backoff?.forgetMs ?? 30000;
  }

  /**
   * A new connection: returns false (and closes it) when the worker is full; otherwise starts its handshake
   * deadline and counts it until `authenticated` or its close (`closed`, which the caller must call).
   */
  arrive(conn: Connection, log: (line: string) => void): boolean {
    if (this.open.size >= this.maxConnections) {
      this.refused.full++;
      conn.close();
      return false;
    }
    this.open.add(conn);
    const key = host(conn);
    let victims = this.pendingByHost.get(key);
    if ((victims?.size ?? 0) < this.maxPendingPerAddress) {
      victims = undefined;
      if (this.pending.size >= this.maxPending)
        for (const set of this.pendingByHost.values()) if (set.size > (victims?.size ?? 0)) victims = set;
    }
    if (victims !== undefined) {
      const [oldest] = victims;
      this.refused.evicted++;
      log(`evicted ${oldest.remote}: too many connections were still in their handshake`);
      this.drop(oldest);
      oldest.close();
    }
    const timer = setTimeout(() => {
      this.refused.timedOut++;
      log(`closed ${conn.remote}: no handshake within ${this.handshakeTimeoutMs} ms`);
      this.drop(conn);
      conn.close();
    }, this.handshakeTimeoutMs);
    timer.unref();
    this.pending.set(conn, timer);
    const mine = this.pendingByHost.get(key) ?? new Set<Connection>();
    this.pendingByHost.set(key, mine);
    mine.add(conn);
    return true;
  }

  /** The connection passed its handshake: its deadline stops, it no longer counts as pending. */
  authenticated(conn: Connection): void {
    this.drop(conn);
  }

  /** The connection closed (a connection `arrive` refused is not counted, so its close changes nothing). */
  closed(conn: Connection): void {
    this.drop(conn);
    this.open.delete(conn);
  }

  /** Whether the connection's address may have its proof checked now. */
  mayTry(conn: Connection): { ok: true } | { ok: false; message: string } {
    const f = this.failures.get(host(conn));
    const now = performance.now();
    if (f === undefined || now >= f.until) return { ok: true };
    this.refused.backingOff++;
    return {
      ok: false,
      message: `${f.count} wrong tokens from this address; retry in ${Math.ceil(f.until - now)} ms`,
    };
  }

  /** A wrong token from the connection's address: it backs off longer each time. */
  wrongToken(conn: Connection): void {
    this.refused.wrongToken++;
    const key = host(conn);
    const now = performance.now();
    let f = this.failures.get(key);
    if (f !== undefined && now - f.last > this.forgetMs) f = undefined;
    const count = (f?.count ?? 0) + 1;
    this.failures.delete(key);
    this.failures.set(key, {
      count,
      last: now,
      until: now + Math.min(this.maxMs, this.baseMs * 2 ** Math.min(30, count - 1)),
    });
    if (this.failures.size > MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value as string);
  }

  /** Connections open now: in their handshake, and in all. */
  get counts(): { pending: number; total: number } {
    return { pending: this.pending.size, total: this.open.size };
  }

  private drop(conn: Connection): void {
    const t = this.pending.get(conn);
    if (t === undefined) return;
    clearTimeout(t);
    this.pending.delete(conn);
    const key = host(conn);
    const mine = this.pendingByHost.get(key);
    mine?.delete(conn);
    if (mine?.size === 0) this.pendingByHost.delete(key);
  }
}

/** The address part of a connection's `host:port`. */
function host(conn: Connection): string {
  try {
    return parseEndpoint(conn.remote).host;
  } catch {
    return conn.remote;
  }
}
