import { createHash } from "node:crypto";
import * as net from "node:net";
import * as tls from "node:tls";
import { RuntimeFault } from "../../errors.js";
import { BaseConnection, CLOSE_NOTICE, dialWithin } from "./connection.js";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, frameSize } from "./frame.js";
import type { FramePool } from "./frame-pool.js";
import {
  type ConnectOptions,
  type Connection,
  formatEndpoint,
  type Listener,
  type TlsConfig,
  type Transport,
  type TransportOptions,
} from "./transport.js";

/** TLS 1.3 suites offered (AES-GCM first: hardware AES makes it the cheapest). */
const TLS_CIPHERS = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/** Time a peer has for the TLS handshake, ms (node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 2000;

/** The pre-shared key of `psk` mode: SHA-256 of a label and the token (32 bytes). */
function pskOf(token: string): Buffer {
  return createHash("sha256").update("cleave-tls-psk\0").update(token).digest();
}

function serverTls(c: TlsConfig): tls.TlsOptions {
  const common = {
    minVersion: "TLSv1.3" as const,
    ciphers: TLS_CIPHERS,
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
  };
  if (c.mode === "psk") {
    const key = pskOf(c.token);
    return { ...common, pskCallback: () => key };
  }
  return {
    ...common,
    cert: c.cert,
    key: c.key,
    ...(c.ca !== undefined ? { ca: c.ca, requestCert: true, rejectUnauthorized: true } : {}),
  };
}

function clientTls(c: TlsConfig, host: string): tls.ConnectionOptions {
  const common = { minVersion: "TLSv1.3" as const, ciphers: TLS_CIPHERS };
  if (c.mode === "psk") {
    const psk = pskOf(c.token);
    // With a pre-shared key the server is authenticated by the key itself: there is no certificate to check.
    return {
      ...common,
      pskCallback: () => ({ psk, identity: "cleave" }),
      checkServerIdentity: () => undefined,
    };
  }
  return {
    ...common,
    cert: c.cert,
    key: c.key,
    ...(c.ca !== undefined ? { ca: c.ca } : {}),
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
  };
}

/** A connection over a raw TCP socket; each frame is preceded by its length as a u32 (little-endian). */
class TcpConnection extends BaseConnection {
  private readonly lenBuf = Buffer.alloc(4);
  private lenFilled = 0;
  private target?: Buffer;
  private targetFilled = 0;
  private closedByUs = false;
  private ending = false;
  private drained?: Promise<void>;

  constructor(
    private readonly socket: net.Socket,
    remote: string,
    maxFrameBytes: number,
    private readonly pool?: FramePool,
  ) {
    super(remote, maxFrameBytes);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () =>
      this.ended(this.closedByUs ? undefined : new RuntimeFault("RUNTIME", `${this.label}: closed by peer`)),
    );
  }

  protected write(parts: Uint8Array[], size: number): Promise<void> {
    const head = Buffer.allocUnsafe(4 + parts[0].byteLength);
    head.writeUInt32LE(size, 0);
    head.set(parts[0], 4);
    const s = this.socket;
    s.cork();
    let ok = s.write(head);
    for (let i = 1; i < parts.length; i++) ok = s.write(parts[i]);
    s.uncork();
    if (ok) return Promise.resolve();
    // One shared wait per connection, however many senders are blocked on the same full buffer.
    this.drained ??= new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        s.off("close", onClose);
        this.drained = undefined;
        resolve();
      };
      const onClose = () => {
        s.off("drain", onDrain);
        this.drained = undefined;
        reject(new RuntimeFault("RUNTIME", `${this.label}: connection closed while sending`));
      };
      s.once("drain", onDrain);
      s.once("close", onClose);
    });
    return this.drained;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.closed) this.socket.resume();
  }

  /** Tells the peer why (a close notice), then closes: an incoming frame is over the limit. */
  private refuse(len: number): void {
    const why = `frame of ${len} bytes exceeds the limit of ${this.frameLimit} bytes; refused`;
    const parts = encodeFrame({
      type: "control",
      requestId: 0,
      msg: { t: CLOSE_NOTICE, message: `peer refused a ${why}` },
    });
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(frameSize(parts), 0);
    this.ending = true;
    this.socket.end(Buffer.concat([head, ...parts]));
    this.closedByUs = true;
    this.fail(new RuntimeFault("RUNTIME", `${this.label}: incoming ${why}`));
  }

  protected shutdown(): void {
    this.closedByUs = true;
    // After a close notice, let end() flush it; destroy only if the peer never finishes the close.
    if (this.ending) setTimeout(() => this.socket.destroy(), 1000).unref();
    else this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.closed) {
      if (this.target === undefined) {
        const take = Math.min(4 - this.lenFilled, chunk.length - off);
        chunk.copy(this.lenBuf, this.lenFilled, off, off + take);
        this.lenFilled += take;
        off += take;
        if (this.lenFilled < 4) return;
        this.lenFilled = 0;
        const len = this.lenBuf.readUInt32LE(0);
        // Checked before anything is allocated: a 4 GB prefix costs the receiver nothing.
        if (len > this.frameLimit) {
          this.refuse(len);
          return;
        }
        if (chunk.length - off >= len) {
          // The whole frame is in this chunk: hand out a view, no copy.
          const frame = chunk.subarray(off, off + len);
          off += len;
          this.received(frame);
          continue;
        }
        this.target = this.pool ? this.pool.take(len) : Buffer.allocUnsafeSlow(len);
        this.targetFilled = 0;
      }
      const t = this.target;
      const take = Math.min(t.length - this.targetFilled, chunk.length - off);
      chunk.copy(t, this.targetFilled, off, off + take);
      this.targetFilled += take;
      off += take;
      if (this.targetFilled === t.length) {
        this.target = undefined;
        this.received(t);
      }
    }
  }
}

/** Raw TCP with u32 length-prefixed frames and Nagle off. */
export class TcpTransport implements Transport {
  readonly name = "tcp" as const;
  private readonly maxFrameBytes: number;
  private readonly pool?: FramePool;
  private readonly tls?: TlsConfig;
  private readonly maxConnections?: number;

  constructor(opts: TransportOptions = {}) {
    this.maxConnections = opts.maxConnections;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.pool = opts.receivePool;
    this.tls = opts.tls;
  }

  listen(host: string, port: number, onConnection: (conn: Connection) => void): Promise<Listener> {
    const sockets = new Set<net.Socket>();
    const onSocket = (socket: net.Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      const remote = formatEndpoint(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
      onConnection(new TcpConnection(socket, remote, this.maxFrameBytes, this.pool));
    };
    const server = this.tls ? tls.createServer(serverTls(this.tls), onSocket) : net.createServer(onSocket);
    // A peer that fails the TLS handshake is dropped by node; its error must not reach the process.
    server.on("tlsClientError", (_err: Error, s: net.Socket) => s.destroy());
    if (this.maxConnections !== undefined) server.maxConnections = this.maxConnections;
    return new Promise((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new RuntimeFault("RUNTIME", `cannot listen on ${formatEndpoint(host, port)} (${err.message})`),
        ),
      );
      server.listen(port, host, () => {
        const addr = server.address() as net.AddressInfo;
        resolve({
          host: addr.address,
          port: addr.port,
          close: () =>
            new Promise<void>((done) => {
              for (const s of sockets) s.destroy();
              server.close(() => done());
            }),
        });
      });
    });
  }

  connect(endpoint: string, opts: ConnectOptions = {}): Promise<Connection> {
    return dialWithin<Connection>(endpoint, opts, (host, port) => {
      const socket = this.tls
        ? tls.connect({ host, port, ...clientTls(this.tls, host) })
        : net.connect({ host, port });
      return {
        emitter: socket,
        readyEvent: this.tls ? "secureConnect" : "connect",
        ready: () => new TcpConnection(socket, endpoint, this.maxFrameBytes, this.pool),
        discard: () => socket.destroy(),
      };
    });
  }
}
