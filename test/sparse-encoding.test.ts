import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import type { BenchResult } from "../src/harness/bench.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { wireBytes } from "../src/onnx/encoding.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { bitmapBytes } from "../src/onnx/zero-pack.js";
import { Calibrator, calibrationInputs } from "../src/partition/calibrate.js";
import { planWithFidelity } from "../src/partition/plan-fidelity.js";
import { hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { cleave } from "./helpers/cli.js";
import { cameraServerYaml } from "./helpers/pair.js";

// A model whose activation after the first layer is about 80% zeros whatever the weights (Relu(sin(50 x) -
// 0.8)), smaller zero-packed than the input it is computed from: on a slow link the lossless plan sends it
// packed from the camera, and nothing but packing may change a value under --max-rel-error 0.

const dir = mkdtempSync(join(tmpdir(), "cleave-sparse-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function gated(): Uint8Array {
  const g = new GraphBuilder("gated", { seed: 3 });
  const x = g.input("x", "float32", [1, 3, 64, 64]);
  const c1 = g.node("Conv", [x, g.weight("w1", [16, 3, 3, 3])], { strides: [2, 2], pads: [1, 1, 1, 1] });
  const k = g.constant("k", "float32", [], Float32Array.of(50));
  const t = g.constant("t", "float32", [], Float32Array.of(0.8));
  const s = g.node("Sin", [g.node("Mul", [c1, k])]);
  const gate = g.node("Relu", [g.node("Sub", [s, t])], {}, "gate");
  // Most of the compute after the gate, too much for the camera's eighth of a core.
  let h = gate;
  for (let i = 0; i < 6; i++) {
    const w = g.weight(`w${i + 2}`, [64, i === 0 ? 16 : 64, 3, 3]);
    h = g.node("Relu", [g.node("Conv", [h, w], { pads: [1, 1, 1, 1] })]);
  }
  const p = g.node("Flatten", [g.node("GlobalAveragePool", [h])]);
  g.node("Gemm", [p, g.weight("fc", [10, 64]), g.weight("fb", [10], "zeros")], { transB: 1 }, "logits");
  g.output("logits", "float32", [1, 10]);
  return encodeModel(g.toModel());
}

const modelPath = join(dir, "gated.onnx");
writeFileSync(modelPath, gated());
const clusterPath = join(dir, "slow.yaml");
writeFileSync(clusterPath, cameraServerYaml("slow", "20Mbit/s"));

test("a lossless budget sends a sparse cut zero-packed, priced by the zeros calibration measured", async () => {
  const model = await analyzeModel(modelPath);
  const cluster = loadCluster(clusterPath);
  const cost = costModelFor(model, cluster, { mode: { camera: "analytic", server: "analytic" } });
  const pack = { encode: 5e-9, decode: 5e-9 };
  const codecTimes = {
    float16: pack,
    int8: pack,
    "int8-channel": pack,
    "float32+sparse": pack,
    "float16+sparse": pack,
    "int8+sparse": pack,
    "int8-channel+sparse": pack,
  };
  const calibrator = new Calibrator(model, calibrationInputs(model, undefined, 4));
  const r = await planWithFidelity(model, cluster, cost, {
    objective: "latency",
    budget: { maxRelError: 0 },
    calibrator,
    codecTimes,
  });
  const enc = r.plan.plan.encodings!;
  assert.deepEqual(
    enc.tensors.map((t) => [t.tensor, t.encoding]),
    [["gate", "float32+sparse"]],
    "only packing keeps every value, and the packed gate is smaller than the input",
  );
  const [gate] = enc.tensors;
  const elements = 16 * 32 * 32;
  assert.ok(gate.nonZero! > 0.1 && gate.nonZero! < 0.35, `non-zero share ${gate.nonZero}`);
  assert.equal(gate.encodedBytes, wireBytes("float32+sparse", elements, gate.nonZero));
  assert.equal(gate.encodedBytes, bitmapBytes(elements) + Math.ceil(gate.nonZero! * elements) * 4);
  assert.equal(enc.fidelity.held.maxRelError, 0);
  assert.ok(r.plan.plan.totals.latency < r.float32!.plan.totals.latency, "packing pays on 20 Mbit/s");
  // Without packing among the encodings, nothing but float32 meets a lossless budget.
  const dense = await planWithFidelity(model, cluster, cost, {
    objective: "latency",
    budget: { maxRelError: 0 },
    calibrator,
    codecTimes,
    encodings: ["int8", "float16"],
  });
  assert.deepEqual(dense.encodings, []);
});

test("bench --max-rel-error 0: the packed cut runs on real workers, sends the bytes it was priced at, changes no value", {
  skip: hasTaskset() ? false : "taskset is missing",
}, () => {
  const out = join(dir, "bench.json");
  const r = cleave(
    [
      "bench",
      modelPath,
      "--cluster",
      clusterPath,
      "--max-rel-error",
      "0",
      "--objective",
      "latency",
      "--requests",
      "8",
      "--rounds",
      "1",
      "--no-corun",
      "-o",
      out,
    ],
    { timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const b = JSON.parse(readFileSync(out, "utf8")) as BenchResult;
  assert.ok(b.budget, r.stdout);
  const [gate] = b.budget.encodings.tensors;
  assert.equal(gate?.encoding, "float32+sparse", r.stdout);
  const row = b.rows.find((x) => x.name === "budget")!;
  assert.equal(row.measured.failed, 0);
  assert.equal(row.maxRelativeDiff, 0, "packing is lossless");
  // The camera framed the gate packed: about the planned bytes (other inputs, other zeros), far below dense.
  const sent = row.stageOutputBytes.camera;
  assert.ok(sent < 0.5 * gate.bytes, `camera sent ${sent} of ${gate.bytes} bytes`);
  assert.ok(Math.abs(sent - gate.encodedBytes) < 0.15 * gate.encodedBytes, `${sent} vs ${gate.encodedBytes}`);
  assert.match(r.stdout, /gate: float32\+sparse, /);
});
