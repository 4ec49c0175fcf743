/**
 * The cost of TLS: moves 1 MiB float32 tensors over the tcp transport between two processes on loopback, plain
 * and with TLS 1.3 (a pre-shared key derived from the token; a self-signed certificate with mutual TLS, made
 * with openssl), and prints JSON side by side: connect time (TCP + TLS handshake), hop latency one at a time,
 * throughput one at a time and with 8 in flight, and the ratios to plain TCP. One hop = one tensor frame; the
 * receiver answers each with a tiny ack, so hop latency = round trip - half the small-message round trip.
 *
 * Usage: npx tsx bench/transport-tls.ts [--count N] [--mib M]   (or node dist/bench/transport-tls.js)
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { summarizeLatencies } from "../src/runtime/latency.js";
import type { Connection, TlsConfig } from "../src/runtime/transport/transport.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";

const { values } = parseArgs({
  options: {
    serve: { type: "string" },
    dir: { type: "string" },
    count: { type: "string", default: "300" },
    mib: { type: "string", default: "1" },
  },
});

type Mode = "plain" | "psk" | "cert";
const TOKEN = "bench-token";

function tlsOf(mode: Mode, dir: string, side: "server" | "client"): TlsConfig | undefined {
  if (mode === "plain") return undefined;
  if (mode === "psk") return { mode: "psk", token: TOKEN };
  const read = (f: string) => readFileSync(join(dir, f));
  const me = side === "server" ? "server" : "client";
  const other = side === "server" ? "client" : "server";
  return { mode: "cert", cert: read(`${me}.pem`), key: read(`${me}.key`), ca: read(`${other}.pem`) };
}

function makeCert(dir: string, name: string): void {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, `${name}.key`),
      "-out",
      join(dir, `${name}.pem`),
    ],
    { stdio: "ignore" },
  );
}

async function serve(mode: Mode, dir: string): Promise<void> {
  const l = await new TcpTransport({ tls: tlsOf(mode, dir, "server") }).listen("127.0.0.1", 0, (conn) => {
    conn.onFrame((f) => {
      void conn.send({ type: "control", requestId: f.requestId, msg: { t: "ack" } }).catch(() => {});
    });
  });
  process.stdout.write(`listening ${l.port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

function startServer(mode: Mode, dir: string): Promise<{ port: number; stop: () => void }> {
  const self = fileURLToPath(import.meta.url);
  const args = self.endsWith(".ts") ? ["--import", "tsx", self] : [self];
  const child = spawn(process.execPath, [...args, "--serve", mode, "--dir", dir], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (c) => reject(new Error(`server exited (${c})`)));
    createInterface({ input: child.stdout! }).once("line", (line) => {
      resolve({ port: Number(line.split(" ")[1]), stop: () => child.kill() });
    });
  });
}

async function measure(mode: Mode, dir: string, count: number, bytes: number) {
  const srv = await startServer(mode, dir);
  const transport = new TcpTransport({ tls: tlsOf(mode, dir, "client") });
  const endpoint = `127.0.0.1:${srv.port}`;
  const connects: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const c = await transport.connect(endpoint);
    connects.push(performance.now() - t0);
    c.close();
  }
  const conn: Connection = await transport.connect(endpoint);
  const waiters = new Map<number, () => void>();
  conn.onFrame((f) => {
    waiters.get(f.requestId)?.();
    waiters.delete(f.requestId);
  });
  let id = 1;
  const data = new Uint8Array(new Float32Array(bytes / 4).fill(0.5).buffer);
  const roundTrip = (size: number): Promise<number> => {
    const rid = id++;
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      waiters.set(rid, () => resolve(performance.now() - t0));
      const frame =
        size > 0
          ? {
              type: "tensor" as const,
              requestId: rid,
              name: "x",
              dtype: "float32" as const,
              shape: [size / 4],
              data: data.subarray(0, size),
            }
          : { type: "control" as const, requestId: rid, msg: { t: "ping" } };
      conn.send(frame).catch(reject);
    });
  };
  for (let i = 0; i < 30; i++) await roundTrip(bytes); // warm up
  const small: number[] = [];
  for (let i = 0; i < 200; i++) small.push(await roundTrip(0));
  const smallRtt = summarizeLatencies(small).p50;
  const serial: number[] = [];
  let t0 = performance.now();
  for (let i = 0; i < count; i++) serial.push(await roundTrip(bytes));
  const serialMs = performance.now() - t0;
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < count) await roundTrip(bytes);
    }),
  );
  const inflightMs = performance.now() - t0;
  conn.close();
  srv.stop();
  const mib = (count * bytes) / 2 ** 20;
  const s = summarizeLatencies(serial);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    mode,
    connectMsP50: r(summarizeLatencies(connects).p50),
    smallRoundTripMs: r(smallRtt),
    hopMsP50: r(s.p50 - smallRtt / 2),
    hopMsP95: r(s.p95 - smallRtt / 2),
    mibPerSecondOneAtATime: r(mib / (serialMs / 1000)),
    mibPerSecond8InFlight: r(mib / (inflightMs / 1000)),
  };
}

if (values.serve !== undefined) {
  await serve(values.serve as Mode, values.dir ?? "");
} else {
  const count = Number(values.count);
  const bytes = Math.round(Number(values.mib) * 2 ** 20);
  const dir = mkdtempSync(join(tmpdir(), "cleave-bench-tls-"));
  try {
    makeCert(dir, "server");
    makeCert(dir, "client");
    const results = [];
    for (const mode of ["plain", "psk", "cert"] as const)
      results.push(await measure(mode, dir, count, bytes));
    const [plain, ...tls] = results;
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    process.stdout.write(
      `${JSON.stringify(
        {
          bench: "transport-tls",
          tensorBytes: bytes,
          count,
          results,
          ratiosToPlain: Object.fromEntries(
            tls.map((t) => [
              t.mode,
              {
                hopLatency: ratio(t.hopMsP50, plain.hopMsP50),
                throughputOneAtATime: ratio(t.mibPerSecondOneAtATime, plain.mibPerSecondOneAtATime),
                throughput8InFlight: ratio(t.mibPerSecond8InFlight, plain.mibPerSecond8InFlight),
                connect: ratio(t.connectMsP50, plain.connectMsP50),
              },
            ]),
          ),
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
