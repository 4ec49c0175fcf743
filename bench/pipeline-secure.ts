/**
 * What security costs a running pipeline: a two-stage MatMul+Relu chain on two local worker processes (pinned
 * to one CPU each when taskset exists), pipelined, measured three ways in one run: plain TCP; TLS 1.3 with the
 * token as pre-shared key (`cleave worker --tls psk`); and plain TCP while hostile peers attack both workers
 * (200 idle connections from 127.0.0.2, each reopened 0.5 s after the worker closes it, and 4 loops of wrong
 * tokens, in a process of its own). Prints JSON: throughput and latency of each, each worker's CPU time per
 * second outside its stage runs (what the transport and the attackers cost it), and the ratios to plain. On
 * a machine with fewer cores than workers + coordinator + attacker, the attacked throughput also pays for
 * the attacker's own CPU; the workers' CPU outside runs is the figure that does not.
 *
 * Usage: npx tsx bench/pipeline-secure.ts [--requests N] [--batch B] [--width W] [--model zoo:efficientnet_b0]
 *        (or node dist/bench/...)
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitModel } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { randomTensor } from "../src/onnx/ort.js";
import { buildZooModel } from "../src/zoo/index.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { connectWorker } from "../src/runtime/transport/handshake.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import type { TlsConfig } from "../src/runtime/transport/transport.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";
import { writeChain } from "./chain.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "120" },
    attack: { type: "string" },
    batch: { type: "string", default: "512" },
    width: { type: "string", default: "512" },
    // A zoo model (e.g. efficientnet_b0) split in two MAC-balanced stages instead of the chain.
    model: { type: "string" },
  },
});
const N = Number(values.requests);
const size = { layers: 2, width: Number(values.width), batch: Number(values.batch) };

/** Starts the attack on `endpoints`; the returned function stops it and reports what it did. */
function attack(endpoints: string[]): () => Promise<{ idleOpened: number; wrongTokens: number }> {
  let stop = false;
  let idleOpened = 0;
  let wrongTokens = 0;
  const idle = async (endpoint: string) => {
    const i = endpoint.lastIndexOf(":");
    while (!stop) {
      const s = net.connect({
        host: endpoint.slice(0, i),
        port: Number(endpoint.slice(i + 1)),
        localAddress: "127.0.0.2",
      });
      s.on("error", () => {});
      idleOpened++;
      await new Promise((r) => s.once("close", r));
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const wrong = async (endpoint: string) => {
    while (!stop) {
      await connectWorker(new TcpTransport(), endpoint, { token: "wrong", role: "probe", from: "x" }).catch(
        () => {},
      );
      wrongTokens++;
    }
  };
  const tasks = [
    ...Array.from({ length: 200 }, (_, k) => idle(endpoints[k % endpoints.length])),
    ...Array.from({ length: 4 }, (_, k) => wrong(endpoints[k % endpoints.length])),
  ];
  return async () => {
    stop = true;
    await Promise.all(tasks);
    return { idleOpened, wrongTokens };
  };
}

/**
 * Runs the attack in a process of its own (as an attacker on another host would be: not in the coordinator's
 * event loop); resolves to a function that stops it and returns its counts.
 */
function attackProcess(endpoints: string[]): () => Promise<{ idleOpened: number; wrongTokens: number }> {
  const self = fileURLToPath(import.meta.url);
  const args = self.endsWith(".ts") ? ["--import", "tsx", self] : [self];
  const child = spawn(process.execPath, [...args, "--attack", endpoints.join(",")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => {
    out += b.toString();
  });
  return async () => {
    child.stdin.end();
    await once(child, "exit");
    return JSON.parse(out) as { idleOpened: number; wrongTokens: number };
  };
}

/** The zoo model's two-stage split, written once, when --model is given. */
const zoo = values.model
  ? await (async () => {
      const name = values.model!.replace(/^zoo:/, "");
      const model = await analyzeModel(buildZooModel(name), { source: `zoo:${name}` });
      const dir = mkdtempSync(join(tmpdir(), "cleave-bench-secure-"));
      splitModel(model, { stages: 2 }, dir, { modelPath: `zoo:${name}` });
      return { model, dir };
    })()
  : undefined;

async function run(mode: "plain" | "psk" | "attacked") {
  const tlsFlag = mode === "psk" ? ["--tls", "psk"] : [];
  const cluster = await startLocalWorkers(
    [
      { name: "d0", cpus: [0], threads: 1 },
      { name: "d1", cpus: [1], threads: 1 },
    ],
    { wrap: (_d, cmd) => [...cmd, ...tlsFlag] },
  );
  try {
    const tls: TlsConfig | undefined = mode === "psk" ? { mode: "psk", token: cluster.token } : undefined;
    const p = await deploy(zoo ? zoo.dir : writeChain(2, size), cluster.workers, {
      token: cluster.token,
      maxInFlight: 4,
      tls,
    });
    const feeds = zoo
      ? Array.from({ length: 4 }, (_, i) => inputFeeds(zoo.model, i + 1))
      : Array.from({ length: 4 }, (_, i) => ({
          x: randomTensor("float32", [size.batch, size.width], i + 1),
        }));
    await p.runMany({ count: 8, feeds: (i) => feeds[i % 4] }, { inFlight: 4 }); // warm up
    const stopAttack =
      mode === "attacked" ? attackProcess(cluster.workers.map((w) => w.endpoint)) : undefined;
    // Let the attack reach full strength before measuring.
    if (stopAttack) await new Promise((r) => setTimeout(r, 1000));
    const before = await p.workerStats();
    const t0 = performance.now();
    const r = await p.runMany({ count: N, feeds: (i) => feeds[i % 4] }, { inFlight: 4 });
    const seconds = (performance.now() - t0) / 1000;
    const after = await p.workerStats();
    const attacked = await stopAttack?.();
    // CPU each worker process used outside its stage runs, per second of the run: receiving, sending, and
    // whatever the attackers cost it.
    const overhead = after.map((a, i) => {
      const b = before[i];
      const compute = a.stages[0].computeCpuMs - b.stages[0].computeCpuMs;
      return (a.cpuMs - b.cpuMs - compute) / seconds;
    });
    await p.close();
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      mode,
      completed: r.completed,
      failed: r.failed,
      throughput: r3(r.throughput),
      latencyMs: { p50: r3(r.latencyMs.p50), p95: r3(r.latencyMs.p95) },
      workerCpuMsPerSecondOutsideRuns: overhead.map(r3),
      ...(attacked ? { attack: attacked } : {}),
    };
  } finally {
    await cluster.stop();
  }
}

if (values.attack !== undefined) {
  const stop = attack(values.attack.split(","));
  process.stdin.resume();
  await once(process.stdin, "end");
  process.stdout.write(JSON.stringify(await stop()));
  process.exit(0);
}

const plain = await run("plain");
const psk = await run("psk");
const attacked = await run("attacked");
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "pipeline-secure",
      model: zoo ? values.model : { ...size, hopBytes: size.batch * size.width * 4 },
      requests: N,
      results: [plain, psk, attacked],
      ratiosToPlain: {
        pskThroughput: ratio(psk.throughput, plain.throughput),
        attackedThroughput: ratio(attacked.throughput, plain.throughput),
      },
    },
    null,
    2,
  )}\n`,
);
