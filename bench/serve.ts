/**
 * Serving overhead: the same two-stage deployment on the local cluster's two pinned workers, driven (1) by
 * calling Pipeline.infer directly, (2) over HTTP through cleave's InferenceServer on node's `http`, and (3)
 * over HTTP through the same codec behind `fastify`, with JSON and binary (tensor data extension) bodies,
 * in alternating rounds. Clients are node `http` requests on keep-alive sockets in this process. Prints
 * JSON: requests/s and p50/p99 per configuration, one request at a time (the added latency per request)
 * and with several in flight (throughput), and the overhead per request against the direct pipeline.
 *
 * Usage: npx tsx bench/serve.ts [--requests N] [--rounds R] [--in-flight K] [--width W] [--classes C]
 */
import { Agent, request } from "node:http";
import { parseArgs } from "node:util";
import Fastify from "fastify";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { resolveSplit } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { ort } from "../src/onnx/ort.js";
import { summarizeLatencies } from "../src/runtime/latency.js";
import type { Tensors } from "../src/runtime/coordinator/pipeline.js";
import { decodeInferRequest, encodeInferResponse } from "../src/serve/codec.js";
import { deployForServing } from "../src/serve/serve-split.js";
import { InferenceServer } from "../src/serve/server.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "300" },
    rounds: { type: "string", default: "3" },
    "in-flight": { type: "string", default: "4" },
    width: { type: "string", default: "256" },
    classes: { type: "string", default: "1000" },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
const K = Number(values["in-flight"]);
const W = Number(values.width);
const C = Number(values.classes);

const g = new GraphBuilder("mlp");
g.input("x", "float32", [1, W]);
g.node("MatMul", ["x", g.weight("w1", [W, W])], {}, "h");
g.node("Relu", ["h"], {}, "r");
g.node("MatMul", ["r", g.weight("w2", [W, C])], {}, "y");
g.output("y", "float32", [1, C]);
const model = await analyzeModel(g.toModel(), { source: "bench-mlp" });
const cluster = loadClusterSpec("local");
const served = await deployForServing(
  model,
  resolveSplit(model, { stages: 2 }),
  ["core0", "core1"],
  cluster,
  "mlp",
  {
    inFlight: K,
  },
);
const x = Float32Array.from({ length: W }, (_, i) => Math.sin(i));
const feeds: Tensors = { x: new ort.Tensor("float32", x, [1, W]) };

const nodeServer = new InferenceServer(served, { maxAdmitted: 1024 });
const nodeAddr = await nodeServer.start();

const fastify = Fastify({ bodyLimit: 256 * 1024 * 1024 });
fastify.removeAllContentTypeParsers();
fastify.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
fastify.post("/v2/models/mlp/infer", async (req, reply) => {
  const hl = req.headers["inference-header-content-length"];
  const d = decodeInferRequest(
    req.body as Buffer,
    hl === undefined ? undefined : Number(hl),
    served.signature,
  );
  const out = await served.pipeline.infer(d.feeds);
  const enc = encodeInferResponse("mlp", undefined, d.id, out, d.outputs);
  if (enc.headerLength !== undefined) reply.header("inference-header-content-length", enc.headerLength);
  reply.header(
    "content-type",
    enc.headerLength === undefined ? "application/json" : "application/octet-stream",
  );
  return Buffer.concat(enc.parts, enc.bytes);
});
await fastify.listen({ host: "127.0.0.1", port: 0 });
const fastifyPort = (fastify.server.address() as { port: number }).port;

const jsonBody = Buffer.from(
  JSON.stringify({ inputs: [{ name: "x", shape: [1, W], datatype: "FP32", data: Array.from(x) }] }),
);
const binHead = Buffer.from(
  JSON.stringify({
    inputs: [{ name: "x", shape: [1, W], datatype: "FP32", parameters: { binary_data_size: x.byteLength } }],
    outputs: [{ name: "y", parameters: { binary_data: true } }],
  }),
);
const binBody = Buffer.concat([binHead, Buffer.from(x.buffer)]);
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(port: number, body: Buffer, binary: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {
      "content-type": binary ? "application/octet-stream" : "application/json",
      "content-length": body.byteLength,
    };
    if (binary) headers["inference-header-content-length"] = binHead.byteLength;
    const req = request(
      { host: "127.0.0.1", port, path: "/v2/models/mlp/infer", method: "POST", agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve()
            : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks)}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

type Config = { name: string; one: () => Promise<unknown> };
const configs: Config[] = [
  { name: "pipeline", one: () => served.pipeline.infer(feeds) },
  { name: "http-json", one: () => post(nodeAddr.port, jsonBody, false) },
  { name: "http-binary", one: () => post(nodeAddr.port, binBody, true) },
  { name: "fastify-json", one: () => post(fastifyPort, jsonBody, false) },
  { name: "fastify-binary", one: () => post(fastifyPort, binBody, true) },
];

async function measure(c: Config, inFlight: number, count: number) {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < count) {
        const s = performance.now();
        await c.one();
        lat.push(performance.now() - s);
      }
    }),
  );
  return { wallMs: performance.now() - t0, lat };
}

for (const c of configs) await measure(c, K, 100); // warm-up
/** Per configuration, per round: p50 and p99 alone (ms), requests/s alone and with K in flight. */
type RoundFigures = {
  p50: number;
  p99: number;
  alonePerSecond: number;
  perSecond: number;
  inFlightP99: number;
};
const perRound = new Map<string, RoundFigures[]>();
for (let r = 0; r < ROUNDS; r++)
  // The order turns every round, so a drift of this shared machine's speed hits each configuration alike.
  for (let k = 0; k < configs.length; k++) {
    const c = configs[(k + r) % configs.length];
    const one = await measure(c, 1, Math.ceil(N / 2));
    const many = await measure(c, K, N);
    const a = summarizeLatencies(one.lat);
    const m = summarizeLatencies(many.lat);
    const list = perRound.get(c.name) ?? [];
    list[r] = {
      p50: a.p50,
      p99: a.p99,
      alonePerSecond: (one.lat.length * 1000) / one.wallMs,
      perSecond: (many.lat.length * 1000) / many.wallMs,
      inFlightP99: m.p99,
    };
    perRound.set(c.name, list);
  }
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pick = (name: string, f: keyof RoundFigures) => (perRound.get(name) ?? []).map((x) => x[f]);
const rows = Object.fromEntries(
  configs.map((c) => [
    c.name,
    {
      alone: {
        perSecond: median(pick(c.name, "alonePerSecond")),
        p50Ms: median(pick(c.name, "p50")),
        p99Ms: median(pick(c.name, "p99")),
      },
      inFlight: { perSecond: median(pick(c.name, "perSecond")), p99Ms: median(pick(c.name, "inFlightP99")) },
    },
  ]),
);
const base = pick("pipeline", "p50");
const baseRate = pick("pipeline", "perSecond");
const overhead = Object.fromEntries(
  configs
    .filter((c) => c.name !== "pipeline")
    .map((c) => {
      const p50 = pick(c.name, "p50");
      const rate = pick(c.name, "perSecond");
      return [
        c.name,
        {
          // Paired within each round, then the median over rounds.
          addedP50MsAlone: median(p50.map((v, i) => v - base[i])),
          addedP50MsPerRound: p50.map((v, i) => Number((v - base[i]).toFixed(3))),
          throughputRatio: median(rate.map((v, i) => v / baseRate[i])),
        },
      ];
    }),
);
console.log(
  JSON.stringify(
    {
      model: {
        input: [1, W],
        output: [1, C],
        jsonRequestBytes: jsonBody.byteLength,
        binaryRequestBytes: binBody.byteLength,
      },
      requests: N,
      rounds: ROUNDS,
      inFlight: K,
      rows,
      overhead,
    },
    null,
    2,
  ),
);
agent.destroy();
await fastify.close();
await nodeServer.stop();
await served.close();
