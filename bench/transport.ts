/**
 * Transport benchmark: moves 1 MiB float32 tensors over each transport between two processes on
 * loopback and prints JSON: throughput (MiB/s) and latency one-at-a-time and with 8 in flight, and the
 * ratios between transports. One hop = one tensor frame from sender to receiver; the receiver answers
 * each with a tiny ack, so hop latency = round trip - half the small-message round trip.
 *
 * Usage: npx tsx bench/transport.ts [--count N] [--mib M]   (or node dist/bench/transport.js)
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { summarizeLatencies } from "../src/runtime/latency.js";
import type { Connection, TransportName } from "../src/runtime/transport/transport.js";
import { makeTransport, TRANSPORT_NAMES } from "../src/runtime/transport/transports.js";

const { values } = parseArgs({
  options: {
    serve: { type: "string" },
    count: { type: "string", default: "300" },
    mib: { type: "string", default: "1" },
  },
});

async function serve(name: TransportName): Promise<void> {
  const l = await makeTransport(name).listen("127.0.0.1", 0, (conn) => {
    conn.onFrame((f) => {
      void conn.send({ type: "control", requestId: f.requestId, msg: { t: "ack" } }).catch(() => {});
    });
  });
  process.stdout.write(`listening ${l.port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

function startServer(name: TransportName): Promise<{ port: number; stop: () => void }> {
  const self = fileURLToPath(import.meta.url);
  const args = self.endsWith(".ts") ? ["--import", "tsx", self] : [self];
  const child = spawn(process.execPath, [...args, "--serve", name], { stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.once("exit", (c) => reject(new Error(`server exited (${c})`)));
    createInterface({ input: child.stdout! }).once("line", (line) => {
      resolve({ port: Number(line.split(" ")[1]), stop: () => child.kill() });
    });
  });
}

async function measure(name: TransportName, count: number, bytes: number) {
  const srv = await startServer(name);
  const conn: Connection = await makeTransport(name).connect(`127.0.0.1:${srv.port}`);
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

  const inflight: number[] = [];
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < count) inflight.push(await roundTrip(bytes));
    }),
  );
  const inflightMs = performance.now() - t0;
  conn.close();
  srv.stop();
  const mib = (count * bytes) / 2 ** 20;
  const s = summarizeLatencies(serial);
  const p = summarizeLatencies(inflight);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    transport: name,
    smallRoundTripMs: r(smallRtt),
    oneAtATime: {
      mibPerSecond: r(mib / (serialMs / 1000)),
      hopMsP50: r(s.p50 - smallRtt / 2),
      hopMsP95: r(s.p95 - smallRtt / 2),
      roundTripMsP50: r(s.p50),
    },
    inFlight8: {
      mibPerSecond: r(mib / (inflightMs / 1000)),
      roundTripMsP50: r(p.p50),
      roundTripMsP95: r(p.p95),
    },
  };
}

if (values.serve !== undefined) {
  await serve(values.serve as TransportName);
} else {
  const count = Number(values.count);
  const bytes = Math.round(Number(values.mib) * 2 ** 20);
  const results = [];
  for (const name of TRANSPORT_NAMES) results.push(await measure(name, count, bytes));
  const [tcp, ws] = results;
  process.stdout.write(
    `${JSON.stringify(
      {
        bench: "transport",
        tensorBytes: bytes,
        count,
        results,
        ratios: {
          tcpOverWsThroughputOneAtATime:
            Math.round((tcp.oneAtATime.mibPerSecond / ws.oneAtATime.mibPerSecond) * 100) / 100,
          tcpOverWsThroughput8InFlight:
            Math.round((tcp.inFlight8.mibPerSecond / ws.inFlight8.mibPerSecond) * 100) / 100,
          wsOverTcpHopLatency: Math.round((ws.oneAtATime.hopMsP50 / tcp.oneAtATime.hopMsP50) * 100) / 100,
        },
      },
      null,
      2,
    )}\n`,
  );
}
