import { createServer, type IncomingMessage } from "node:http";
import { WebSocket, WebSocketServer } from "ws";
import { RuntimeFault } from "../../errors.js";
import { BaseConnection, dialWithin } from "./connection.js";
import { DEFAULT_MAX_FRAME_BYTES } from "./frame.js";
import {
  type ConnectOptions,
  type Connection,
  formatEndpoint,
  type Listener,
  type Transport,
  type TransportOptions,
} from "./transport.js";

/** Time a client has to send its upgrade request, ms. */
const UPGRADE_TIMEOUT_MS = 2000;

/** ws's close code for a message over maxPayload. */
const CLOSE_TOO_BIG = 1009;

/** A connection over one WebSocket; each frame is one binary message (ws masks and uses bufferutil). */
class WsConnection extends BaseConnection {
  private closedByUs = false;

  constructor(
    private readonly ws: WebSocket,
    remote: string,
    maxFrameBytes: number,
  ) {
    super(remote, maxFrameBytes);
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.fail(new RuntimeFault("RUNTIME", `${this.label}: text message on a binary channel`));
        return;
      }
      this.received(data);
    });
    ws.on("error", (err) => this.fail(this.describe(err)));
    ws.on("close", (code: number) => {
      if (this.closedByUs) this.ended();
      else if (code === CLOSE_TOO_BIG)
        this.ended(new RuntimeFault("RUNTIME", `${this.label}: peer refused a frame over its size limit`));
      else this.ended(new RuntimeFault("RUNTIME", `${this.label}: closed by peer`));
    });
  }

  private describe(err: Error): Error {
    // ws reports an oversized incoming message as an error with this code before closing with 1009.
    if ((err as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH")
      return new RuntimeFault(
        "RUNTIME",
        `${this.label}: incoming frame exceeds the limit of ${this.maxFrameBytes} bytes; refused`,
      );
    return err;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    if (!this.closed) this.ws.resume();
  }

  protected override limitChanged(bytes: number): void {
    // ws checks each message's length against its receiver's maxPayload before buffering it; that field is
    // not public, so it is set here (a missing receiver leaves the check in BaseConnection.received).
    const receiver = (this.ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
    if (receiver && typeof receiver._maxPayload === "number") receiver._maxPayload = bytes;
  }

  protected write(parts: Uint8Array[], _size: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const cb = (err?: Error) =>
        err ? reject(new RuntimeFault("RUNTIME", `${this.label}: send failed (${err.message})`)) : resolve();
      // Fragments of one message: the header and the tensor bytes go out without being concatenated.
      for (let i = 0; i < parts.length - 1; i++) this.ws.send(parts[i], { binary: true, fin: false });
      this.ws.send(parts[parts.length - 1], { binary: true, fin: true }, cb);
    });
  }

  protected shutdown(): void {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }
}

/** WebSocket (the `ws` package with bufferutil, no compression); one binary message per frame. */
export class WsTransport implements Transport {
  readonly name = "ws" as const;
  private readonly maxFrameBytes: number;

  constructor(opts: TransportOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  listen(host: string, port: number, onConnection: (conn: Connection) => void): Promise<Listener> {
    return new Promise((resolve, reject) => {
      // An HTTP server of its own, so the upgrade request has the handshake's deadline, not node's 60 s.
      const http = createServer({
        headersTimeout: UPGRADE_TIMEOUT_MS,
        requestTimeout: UPGRADE_TIMEOUT_MS,
        // How often node checks those deadlines (default 30 s).
        connectionsCheckingInterval: 250,
      });
      const wss = new WebSocketServer({
        server: http,
        maxPayload: this.maxFrameBytes,
        perMessageDeflate: false,
        clientTracking: true,
      });
      http.once("error", (err) =>
        reject(
          new RuntimeFault("RUNTIME", `cannot listen on ${formatEndpoint(host, port)} (${err.message})`),
        ),
      );
      wss.on("connection", (ws: WebSocket, req: IncomingMessage) => {
        const s = req.socket;
        const remote = formatEndpoint(s.remoteAddress ?? "?", s.remotePort ?? 0);
        onConnection(new WsConnection(ws, remote, this.maxFrameBytes));
      });
      http.listen(port, host, () => {
        const addr = http.address();
        if (addr === null || typeof addr === "string") throw new Error("ws server has no TCP address");
        resolve({
          host: addr.address,
          port: addr.port,
          close: () =>
            new Promise<void>((done) => {
              for (const c of wss.clients) c.terminate();
              wss.close(() => http.close(() => done()));
              http.closeAllConnections();
            }),
        });
      });
    });
  }

  connect(endpoint: string, opts: ConnectOptions = {}): Promise<Connection> {
    return dialWithin<Connection>(endpoint, opts, (host, port) => {
      const ws = new WebSocket(`ws://${formatEndpoint(host, port)}/`, {
        maxPayload: this.maxFrameBytes,
        perMessageDeflate: false,
      });
      return {
        emitter: ws,
        // ws turns Nagle off on its sockets itself.
        readyEvent: "open",
        ready: () => new WsConnection(ws, endpoint, this.maxFrameBytes),
        discard: () => {
          ws.on("error", () => {});
          ws.terminate();
        },
      };
    });
  }
}
