import { ArgumentError } from "../errors.js";
import { checkThreads } from "../onnx/ort.js";
import { formatEndpoint, parseEndpoint } from "../runtime/transport/transport.js";
import { isLoopback, Worker } from "../runtime/worker/worker.js";
import { workerMetricsRegistry } from "../serve/metrics.js";
import { type MetricsEndpoint, serveMetrics } from "../serve/metrics-http.js";
import { bool, type Command, intFlag, parseFlags, str } from "./command.js";
import { tlsFlags } from "./tls-flags.js";
import { readWorkerConfig, tokenFrom } from "./worker-config.js";

const USAGE = `usage: cleave worker --listen HOST:PORT [--token-file F | --token T] [--insecure] [--threads N] [--name NAME]
                     [--transport tcp|ws] [--tls psk | --tls-cert F --tls-key F [--tls-ca F]]
                     [--metrics HOST:PORT] [--config worker.yaml]

Runs one device's worker until SIGINT/SIGTERM. Prints one line with the address it really listens on
(port 0 picks a free one). A coordinator (cleave run, deploy()) sends it stage models; it keeps them in
memory only.
  --listen     address to listen on (default 127.0.0.1:0)
  --token-file file whose first line is the shared secret peers must prove they hold (it never crosses
               the network)
  --token      the secret itself (visible to every user in ps; prefer --token-file or $CLEAVE_TOKEN)
               (default: $CLEAVE_TOKEN). Without one the worker accepts any peer, and listens only on a
               loopback address
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
  --runs       where stages run: thread (each stage on a thread of its own, so the worker reads, relays
               and answers while a stage runs, and its stages run at the same time), inline (on the
               worker's I/O thread, one run at a time), or auto (default: threads for the stages that
               may run beside another of the worker's, as the coordinator counts them, else inline)
  --metrics    serve Prometheus metrics (per-stage runs, errors, onnxruntime seconds) on
               http://HOST:PORT/metrics
  --config     YAML or JSON file of these options by long name (listen: 0.0.0.0:7001, token-file: ...,
               threads: 2, metrics: 0.0.0.0:9100, no-receive-pool: true); flags win over it
  --exit-on-stdin-close  exit when standard input closes (used when cleave starts workers itself)`;

/** `cleave worker`. */
export const workerCommand: Command = {
  name: "worker",
  summary: "run a worker that serves pipeline stages for a coordinator",
  usage: USAGE,
  async run(argv, io) {
    const parsed = parseFlags("worker", argv, {
      config: { type: "string" },
      listen: { type: "string" },
      token: { type: "string" },
      "token-file": { type: "string" },
      metrics: { type: "string" },
      threads: { type: "string" },
      name: { type: "string" },
      transport: { type: "string" },
      "max-frame": { type: "string" },
      "no-receive-pool": { type: "boolean" },
      runs: { type: "string" },
      insecure: { type: "boolean" },
      tls: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "exit-on-stdin-close": { type: "boolean" },
    });
    const { positionals } = parsed;
    const configFile = str(parsed.values, "config");
    const values = { ...(configFile === undefined ? {} : readWorkerConfig(configFile)), ...parsed.values };
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
    const runs = str(values, "runs") ?? "auto";
    if (runs !== "auto" && runs !== "thread" && runs !== "inline")
      throw new ArgumentError(`--runs: expected auto, thread or inline, got '${runs}'`, { field: "runs" });
    const name = str(values, "name");
    const threads = checkThreads(intFlag("threads", str(values, "threads"), 1), "--threads");
    const token = tokenFrom(values);
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
      runs,
    });
    const metricsAt = str(values, "metrics");
    let metricsEndpoint: { host: string; port: number } | undefined;
    if (metricsAt !== undefined)
      try {
        metricsEndpoint = parseEndpoint(metricsAt);
      } catch (err) {
        throw new ArgumentError(`--metrics: ${(err as Error).message}`, { field: "metrics" });
      }
    const addr = await worker.start();
    if ((token ?? "") === "" && !isLoopback(addr.host))
      io.err(
        `cleave worker: warning: listening on ${formatEndpoint(addr.host, addr.port)} without a token (--insecure): anyone who reaches it can run code on this machine`,
      );
    let metrics: MetricsEndpoint | undefined;
    if (metricsEndpoint !== undefined) {
      try {
        metrics = await serveMetrics(
          workerMetricsRegistry(() => worker.stats()),
          metricsEndpoint.host,
          metricsEndpoint.port,
        );
      } catch (err) {
        await worker.stop();
        throw new ArgumentError(`--metrics ${metricsAt}: ${(err as Error).message}`, { field: "metrics" });
      }
    }
    // Says what it is once: "cleave worker" and, when one was given, its name.
    io.out(
      `cleave worker${name === undefined ? "" : ` ${name}`} listening on ${formatEndpoint(addr.host, addr.port)}`,
    );
    if (metrics !== undefined)
      io.out(`cleave worker${name === undefined ? "" : ` ${name}`} metrics on ${metrics.url}`);
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
    await metrics?.close();
    await worker.stop();
    // stdin was resumed to watch for its end; let go of it so the process can exit.
    process.stdin.destroy();
    return 0;
  },
};
