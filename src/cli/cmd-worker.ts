import { ArgumentError } from "../errors.js";
import { checkThreads } from "../onnx/ort.js";
import { formatEndpoint, parseEndpoint } from "../runtime/transport.js";
import { isLoopback, Worker } from "../runtime/worker.js";
import { bool, type Command, intFlag, parseFlags, str } from "./command.js";
import { tlsFlags } from "./tls-flags.js";

const USAGE = `usage: cleave worker --listen HOST:PORT [--token T] [--insecure] [--threads N] [--name NAME] [--transport tcp|ws]

Runs one device's worker until SIGINT/SIGTERM. Prints one line with the address it really listens on
(port 0 picks a free one). A coordinator (cleave run, deploy()) sends it stage models; it keeps them in
memory only.
  --listen     address to listen on (default 127.0.0.1:0)
  --token      shared secret peers must prove they hold (default: $CLEAVE_TOKEN); it never crosses the
               network. Without one the worker accepts any peer, and listens only on a loopback address
  --insecure   listen on a non-loopback address without a token (anyone who reaches it can run code on it)
  --tls psk    encrypt every connection with TLS 1.3, the token as pre-shared key (no certificates)
  --tls-cert, --tls-key  PEM files: encrypt with TLS 1.3 and this certificate
  --tls-ca     PEM file: verify peers' certificates against it (the worker then requires client certificates)
  --threads    onnxruntime intra-op threads (default 1; at most 4 per CPU)
  --name       name used in errors (default worker)
  --transport  tcp (default) or ws
  --max-frame  largest frame accepted, MiB (default 256): bounds a tensor crossing a cut; stage models
               arrive in chunks below it, whatever their size
  --no-receive-pool  receive every large frame into a new buffer instead of reusing stage-input buffers
               (slower; for comparison, see bench/receive-pool.ts)
  --exit-on-stdin-close  exit when standard input closes (used when cleave starts workers itself)`;

/** The token from the environment ($CLEAVE_TOKEN), or undefined; read in this one place. */
function envToken(): string | undefined {
  const t = process.env.CLEAVE_TOKEN;
  return t === undefined || t === "" ? undefined : t;
}

/** `cleave worker`. */
export const workerCommand: Command = {
  name: "worker",
  summary: "run a worker that serves pipeline stages for a coordinator",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("worker", argv, {
      listen: { type: "string" },
      token: { type: "string" },
      threads: { type: "string" },
      name: { type: "string" },
      transport: { type: "string" },
      "max-frame": { type: "string" },
      "no-receive-pool": { type: "boolean" },
      insecure: { type: "boolean" },
      tls: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "exit-on-stdin-close": { type: "boolean" },
    });
    if (positionals.length > 0)
      throw new ArgumentError(`cleave worker: unexpected argument '${positionals[0]}'`);
    const listen = str(values, "listen") ?? "127.0.0.1:0";
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseEndpoint(listen));
    } catch (err) {
      throw new ArgumentError(`--listen: ${(err as Error).message}`, { field: "listen" });
    }
    const transport = str(values, "transport") ?? "tcp";
    if (transport !== "tcp" && transport !== "ws")
      throw new ArgumentError(`--transport: expected tcp or ws, got '${transport}'`, { field: "transport" });
    const name = str(values, "name");
    const threads = checkThreads(intFlag("threads", str(values, "threads"), 1), "--threads");
    const token = str(values, "token") ?? envToken();
    const insecure = bool(values, "insecure");
    const worker = new Worker({
      name: name ?? "worker",
      host,
      port,
      token,
      insecure,
      tls: tlsFlags(values, token),
      threads,
      transport,
      maxFrameBytes: intFlag("max-frame", str(values, "max-frame"), 256) * 1024 * 1024,
      receivePool: !bool(values, "no-receive-pool"),
    });
    const addr = await worker.start();
    if ((token ?? "") === "" && !isLoopback(addr.host))
      io.err(
        `cleave worker: warning: listening on ${formatEndpoint(addr.host, addr.port)} without a token (--insecure): anyone who reaches it can run code on this machine`,
      );
    // Says what it is once: "cleave worker" and, when one was given, its name.
    io.out(
      `cleave worker${name === undefined ? "" : ` ${name}`} listening on ${formatEndpoint(addr.host, addr.port)}`,
    );
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
      if (bool(values, "exit-on-stdin-close")) {
        process.stdin.on("end", done);
        process.stdin.on("close", done);
        process.stdin.resume();
      }
    });
    await worker.stop();
    // stdin was resumed to watch for its end; let go of it so the process can exit.
    process.stdin.destroy();
    return 0;
  },
};
