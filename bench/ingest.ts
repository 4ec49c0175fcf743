/**
 * Benchmark of the foundation and split layers: load + IR + constant folding + shape inference + costs,
 * 4-stage split, and cut enumeration, for resnet50 (~100 MB), vgg16 (~550 MB) and two generated 1,700-node
 * models: `deep1700` (residual conv blocks, weights stored as initializers) and `deep1700-built` (the same
 * kind of blocks with every weight built at run time from constants, as some exporters write them, so
 * ingest folds them). Each task runs in its own process so its peak RSS can be set against the file size.
 * Model names as arguments restrict it to those. Prints one JSON object; `stageMiB` is the size of the four stage files written by the split task.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelProto } from "onnx-buf";
import { GraphBuilder } from "../src/onnx/builder.js";
import { saveModel } from "../src/onnx/model-io.js";
import { makeTensor } from "../src/onnx/tensor.js";
import { buildZooModel } from "../src/zoo/index.js";

const C = 16;
const HW = 16;

/** A weight of `shape` built from constants: Range -> Cast -> Reshape -> Mul -> Sin -> Mul (6 nodes). */
function builtWeight(b: GraphBuilder, shape: number[], phase: number): string {
  const n = shape.reduce((a, x) => a * x, 1);
  const r = b.node("Range", [b.ints("r0", [0], []), b.ints("rn", [n], []), b.ints("r1", [1], [])]);
  const grid = b.node("Reshape", [b.node("Cast", [r], { to: 1 }), b.ints("shape", shape)]);
  const angle = b.node("Mul", [grid, b.constant("f", "float32", [], Float32Array.of(0.7 + phase * 1e-3))]);
  return b.node("Mul", [b.node("Sin", [angle]), b.constant("s", "float32", [], Float32Array.of(0.1))]);
}

/** A [1, C, 1, 1] constant built by ConstantOfShape -> Tile -> Unsqueeze -> Expand (4 nodes). */
function builtChannel(b: GraphBuilder, value: number): string {
  const one = b.node("ConstantOfShape", [b.ints("one", [1])], {
    value: makeTensor("value", "float32", [1], Float32Array.of(value)),
  });
  const col = b.node("Unsqueeze", [b.node("Tile", [one, b.ints("reps", [C])]), b.ints("axes", [1, 2])]);
  return b.node("Expand", [col, b.ints("to", [1, C, 1, 1])]);
}

/**
 * Residual blocks Conv -> Mul -> Add -> Relu -> Add(skip) until the file holds `nodes` nodes; with `built`
 * every weight of a block is built from constants (14 more nodes per block), else it is an initializer.
 */
function deepModel(nodes: number, built: boolean): ModelProto {
  const b = new GraphBuilder(built ? "deep-built" : "deep", { seed: 3 });
  let h = b.input("x", "float32", [1, C, HW, HW]);
  for (let i = 0; b.nodes.length + 5 + (built ? 14 : 0) <= nodes; i++) {
    const w = built ? builtWeight(b, [C, C, 3, 3], i) : b.weight("w", [C, C, 3, 3]);
    const scale = built ? builtChannel(b, 0.5) : b.weight("scale", [1, C, 1, 1], { uniform: [0.4, 0.6] });
    const shift = built ? builtChannel(b, 0.01) : b.weight("shift", [1, C, 1, 1], { uniform: [0, 0.02] });
    const conv = b.node("Conv", [h, w], { pads: [1, 1, 1, 1] });
    const y = b.node("Relu", [b.node("Add", [b.node("Mul", [conv, scale]), shift])]);
    h = b.node("Add", [h, y]);
  }
  b.output(h, "float32", [1, C, HW, HW]);
  return b.toModel();
}

const dirSize = (d: string) => readdirSync(d).reduce((s, f) => s + statSync(join(d, f)).size, 0);

const dir = mkdtempSync(join(tmpdir(), "cleave-bench-ingest-"));
const task = join(import.meta.dirname, "ingest-task.js");
const results: Record<string, unknown>[] = [];
try {
  const models: Array<[string, () => ModelProto]> = [
    ["resnet50", () => buildZooModel("resnet50")],
    ["vgg16", () => buildZooModel("vgg16")],
    ["deep1700", () => deepModel(1700, false)],
    ["deep1700-built", () => deepModel(1700, true)],
  ];
  // `node dist/bench/ingest.js deep1700 deep1700-built` measures only the named models.
  const only = process.argv.slice(2);
  for (const [name, build] of models.filter(([n]) => only.length === 0 || only.includes(n))) {
    const path = join(dir, `${name}.onnx`);
    const proto = build();
    const nodesInFile = proto.graph!.node.length;
    saveModel(proto, path);
    const fileMiB = statSync(path).size / 2 ** 20;
    for (const t of ["load", "split", "cuts"]) {
      const out = execFileSync(process.execPath, [task, t, path, join(dir, `${name}-split`)], {
        encoding: "utf8",
      });
      const r = JSON.parse(out) as Record<string, number>;
      const stageMiB = t === "split" ? dirSize(join(dir, `${name}-split`)) / 2 ** 20 : undefined;
      results.push({
        ...r,
        model: name,
        nodesInFile,
        fileMiB,
        stageMiB,
        peakOverFile: r.peakRssMiB / fileMiB,
      });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ bench: "ingest", results }, null, 2)}\n`);
