import * as net from "node:net";
import { RuntimeFault } from "../errors.js";
import { BaseConnection, CLOSE_NOTICE, dialWithin } from "./connection.js";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, frameSize } from "./frame.js";
import type { FramePool } from "./frame-pool.js";
import {
  type ConnectOptions,
  type Connection,
  formatEndpoint,
  type Listener,
  type Transport,
  type TransportOptions,
} from "./transport.js";

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
      this.ended(this.closedByUs ? undefined : new RuntimeFault("RUNTIME", `${remote}: closed by peer`)),
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
        reject(new RuntimeFault("RUNTIME", `${this.remote}: connection closed while sending`));
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
    this.fail(new RuntimeFault("RUNTIME", `${this.remote}: incoming ${why}`));
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

  constructor(opts: TransportOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.pool = opts.receivePool;
  }

  listen(host: string, port: number, onConnection: (conn: Connection) => void): Promise<Listener> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      const remote = formatEndpoint(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
      onConnection(new TcpConnection(socket, remote, this.maxFrameBytes, this.pool));
    });
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
      const socket = net.connect({ host, port });
      return {
        emitter: socket,
        readyEvent: "connect",
        ready: () => new TcpConnection(socket, endpoint, this.maxFrameBytes, this.pool),
        discard: () => socket.destroy(),
      };
    });
  }
}
