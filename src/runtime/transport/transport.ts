import type { Frame } from "./frame.js";
import type { FramePool } from "./frame-pool.js";

/**
 * The Transport interface: how frames move between a coordinator and workers and between workers.
 * Implementations (transport-tcp.ts, transport-ws.ts) pass one compliance suite
 * (test/runtime-transport.test.ts). Transports are chosen explicitly by name, never registered by import.
 */
export interface Transport {
  /** Short name used on the command line and in stats ("tcp", "ws"). */
  readonly name: TransportName;
  /**
   * Listens on host:port (port 0 picks a free one) and calls `onConnection` for each peer. The returned
   * listener reports the address it really listens on.
   */
  listen(host: string, port: number, onConnection: (conn: Connection) => void): Promise<Listener>;
  /**
   * Connects to `host:port`. Rejects with a RuntimeFault whose message reads
   * `host:port: unreachable (ECONNREFUSED)` (or `timed out after N ms`) when it cannot.
   */
  connect(endpoint: string, opts?: ConnectOptions): Promise<Connection>;
}

/** Names of the transports cleave ships. */
export type TransportName = "tcp" | "ws";

/** Options shared by every transport. */
export interface TransportOptions {
  /** Largest frame sent or accepted, bytes (default DEFAULT_MAX_FRAME_BYTES = 256 MiB). Larger ones are refused. */
  maxFrameBytes?: number;
  /**
   * Where large incoming frames are received into (default: a new buffer each): a receiver that knows when it
   * is done with a frame's bytes hands them back to the pool (transports that own their buffers ignore it).
   */
  receivePool?: FramePool;
  /**
   * Most sockets a listener keeps open, those still in their TLS handshake included (default: no limit);
   * one beyond it is closed as it is accepted.
   */
  maxConnections?: number;
  /** Encrypt every connection with node's TLS (tcp only; default: plain TCP). */
  tls?: TlsConfig;
}

/**
 * TLS for a transport. `psk`: TLS 1.3 with a key derived from the token (no PKI; both sides need the token).
 * `cert`: a certificate and key (PEM) this side presents, and `ca` to verify the other side's (a client
 * without `ca` trusts the system's roots; a server with `ca` requires a client certificate: mutual TLS).
 */
export type TlsConfig =
  | { mode: "psk"; token: string }
  | { mode: "cert"; cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };

/** Options of one connect call. */
export interface ConnectOptions {
  /** Give up after this long, ms (default 5000). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A listening endpoint. */
export interface Listener {
  /** The address really listened on. */
  readonly host: string;
  /** The port really listened on (never 0). */
  readonly port: number;
  /** Stops accepting and closes every connection it accepted. */
  close(): Promise<void>;
}

/** One bidirectional, ordered, reliable stream of frames. */
export interface Connection {
  /** `host:port` of the other side. */
  readonly remote: string;
  /**
   * Who the other side is, for error messages (e.g. `worker core1`), set where the connection is made and the
   * peer is known; messages name `remote` until then. An ephemeral port tells a user nothing.
   */
  peer?: string;
  /** True once closed by either side. */
  readonly closed: boolean;
  /**
   * User-space one-way latency added to every frame this side sends, ms (default 0): there is no
   * netem in the emulated testbed's kernel, so link latency is modelled here. Order is kept.
   */
  delayMs: number;
  /**
   * Largest frame accepted from the peer from now on, bytes (starts at the transport's maxFrameBytes). A
   * larger one closes the connection as soon as its length is known, before anything is allocated for it.
   * The handshake lowers it to a few KiB until the peer proved it holds the token.
   */
  frameLimit: number;
  /** Stops reading from the peer (its sends then block on TCP's flow control) until `resume()`. */
  pause(): void;
  resume(): void;
  /** Bytes sent and received so far (frames, without transport framing). */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /**
   * Sends a frame. Resolves when the transport can take more (backpressure: after 'drain' when its
   * buffer is full). Rejects with a RuntimeFault when the frame exceeds the maximum size (nothing is
   * sent) or the connection is closed.
   */
  send(frame: Frame): Promise<void>;
  /** Sets the handler of incoming frames; frames that arrived before it was set are delivered first, in order. */
  onFrame(handler: (frame: Frame) => void): void;
  /**
   * Sets the handler called once when the connection closes; `err` says why when it was not a clean
   * close by this side (peer gone, frame over the limit, malformed frame).
   */
  onClose(handler: (err?: Error) => void): void;
  /** Closes the connection. */
  close(): void;
}

/** Splits `host:port` (IPv6 in brackets), throwing a plain Error for a malformed endpoint. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(endpoint.trim());
  if (!m || m[1] === "") throw new Error(`'${endpoint}' is not host:port`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`'${endpoint}': port ${port} is out of range`);
  return { host: m[1], port };
}

/** Formats host and port as `host:port` (IPv6 in brackets). */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
