import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { GraphProto, ModelProto } from "onnx-buf";
import { assignByBoundaries } from "../src/partition/assign.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { buildStages } from "../src/export/stage.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds, nestedValue } from "../src/ir/input-values.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { saveModel } from "../src/onnx/model-io.js";
import { createSession } from "../src/onnx/ort.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { cleave } from "./helpers/cli.js";
import { assertOutputsClose } from "./helpers/compare.js";

const SHAPE = [1, 4, 8, 8];

/** A branch of convs reading the outer `x`; with `ownWeights` its weights are the branch's initializers. */
function branch(
  name: string,
  x: string,
  layers: number,
  outer: GraphBuilder,
  ownWeights: boolean,
): GraphProto {
  const b = new GraphBuilder(name, { seed: layers });
  let h = x;
  for (let i = 0; i < layers; i++) {
    const w = ownWeights ? b.weight("w", [4, 4, 3, 3]) : outer.weight(`${name}_w`, [4, 4, 3, 3]);
    // Tensor names 'conv', 'relu' also exist in the main graph: inlining must rename them.
    h = b.node("Relu", [b.node("Conv", [h, w], { pads: [1, 1, 1, 1] })]);
  }
  b.output(h, "float32", SHAPE);
  return b.toGraph();
}

/**
 * A voice-activity-detector-like model: its whole body sits in an If on an int64 input `sr` (the sample
 * rate): 16000 takes a 5-layer branch with its own weights, anything else a 2-layer branch reading the
 * main graph's weights. A Conv after the If has the same tensor names as the branches' nodes.
 */
function ifModel(): ModelProto {
  const b = new GraphBuilder("vad-like", { seed: 9 });
  const x = b.input("x", "float32", SHAPE);
  const sr = b.input("sr", "int64", [1]);
  const cond = b.node("Equal", [sr, b.ints("sr16k", [16000])]);
  const thenB = branch("then", x, 5, b, true);
  const elseB = branch("else", x, 2, b, false);
  const y = b.node("If", [cond], { then_branch: thenB, else_branch: elseB }, "body");
  const out = b.node("Conv", [y, b.weight("w_out", [2, 4, 1, 1])], {}, "conv");
  b.output(out, "float32", [1, 2, 8, 8]);
  return b.toModel();
}

const dir = mkdtempSync(join(tmpdir(), "cleave-if-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, "vad.onnx");
saveModel(ifModel(), file);

test("an If on an int64 input is inlined when the input's value is given, and left whole otherwise", async () => {
  const model = ifModel();
  const taken = await analyzeModel(model, { inputValues: { sr: nestedValue(16000, "test") } });
  assert.deepEqual(taken.folding.inlined, ["body"]);
  assert.equal(taken.warnings.length, 0);
  assert.ok(!taken.graph.nodes.some((n) => n.op === "If"));
  assert.equal(taken.graph.nodes.filter((n) => n.op === "Conv").length, 6, "5 branch convs + the last");
  assert.ok(!taken.graph.nodes.some((n) => n.op === "Equal"), "the condition's arithmetic is dropped");
  assert.equal(taken.totals.params, 5 * 4 * 4 * 9 + 2 * 4, "branch weights become the model's parameters");
  const other = await analyzeModel(model, { inputValues: { sr: nestedValue([8000], "test") } });
  assert.equal(other.graph.nodes.filter((n) => n.op === "Conv").length, 3, "the else branch: 2 + 1");

  const whole = await analyzeModel(model);
  assert.equal(whole.graph.nodes.filter((n) => n.op === "If").length, 1);
  assert.equal(whole.warnings.length, 1);
  assert.match(whole.warnings[0], /If node 'body' stays one node.*input 'sr'.*--input-value sr=VALUE/);
});

test("the inlined model splits 2 and 3 ways and each split reproduces the model, for both branches", async () => {
  const model = ifModel();
  const session = await createSession(model);
  for (const sr of [16000, 8000]) {
    const m = await analyzeModel(model, { inputValues: { sr: nestedValue(sr, "test") } });
    const feeds = inputFeeds(m);
    assert.equal(Number((feeds.sr.data as BigInt64Array)[0]), sr, "the given value is fed");
    const want = await session.run(feeds);
    const order = choosePartitionOrder(m);
    for (const k of [2, 3]) {
      const stages = buildStages(m, assignByBoundaries(m, order, balancedCuts(m, order, k)));
      assert.equal(stages.length, k);
      const runner = await SequentialRunner.fromStages(
        stages,
        m.graph.outputs.map((v) => v.name),
      );
      assertOutputsClose(await runner.run(feeds), want, `sr=${sr}, ${k} stages`);
      await runner.close();
    }
  }
  await session.release();
});

test("cleave inspect, split and run take --input-value; without it inspect warns naming the input", () => {
  const insp = cleave(["inspect", file, "--input-value", "sr=16000", "--json"]);
  assert.equal(insp.code, 0, insp.stderr);
  const j = JSON.parse(insp.stdout);
  assert.equal(j.operators.If, undefined);
  assert.equal(j.operators.Conv, 6);
  assert.equal(insp.stderr, "", "nothing on stderr: no onnxruntime log lines, no warning");

  const plain = cleave(["inspect", file, "--json"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(JSON.parse(plain.stdout).operators.If, 1);
  assert.match(plain.stderr, /^warning: .*If node 'body' stays one node.*--input-value sr=VALUE/);

  for (const k of ["2", "3"]) {
    const out = join(dir, `split-${k}`);
    const s = cleave(["split", file, "--stages", k, "--input-value", "sr=16000", "-o", out, "--json"]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).stages.length, Number(k));
  }

  const inputs = join(dir, "inputs.json");
  writeFileSync(
    inputs,
    JSON.stringify({ sr: [16000], x: Array.from({ length: 256 }, (_, i) => (i % 7) / 7) }),
  );
  const run = cleave(["run", file, "--stages", "2", "--inputs", inputs, "--requests", "20", "--json"], {
    timeoutMs: 120_000,
  });
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout);
  assert.equal(r.report.failed, 0);
  assert.ok(r.maxRelativeDiff < 1e-5, `outputs equal to the whole model (${r.maxRelativeDiff})`);
});

const BAD: Array<[string, string[], RegExp]> = [
  [
    "--input-value naming no input",
    ["--input-value", "rate=16000"],
    /^error: --input-value rate: the model has no input 'rate' \(inputs: x, sr\)$/,
  ],
  [
    "a value of the wrong type",
    ["--input-value", "sr=16000.5"],
    /^error: --input-value sr: input 'sr' is int64, got 16000.5 \(give integers in /,
  ],
  [
    "a value of the wrong count",
    ["--input-value", "sr=[16000,8000]"],
    /^error: --input-value sr: input 'sr' is int64 \[1\] \(1 value\), got 2 values$/,
  ],
  [
    "a value that is not a literal",
    ["--input-value", "sr=fast"],
    /^error: --input-value sr: 'fast' is not a number/,
  ],
];

for (const [label, args, re] of BAD) {
  test(`bad input values give one line: ${label}`, () => {
    const r = cleave(["inspect", file, ...args]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr.trimEnd(), re);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  });
}

test("bad input values give one line: an --inputs file with a missing input", () => {
  const inputs = join(dir, "only-sr.json");
  writeFileSync(inputs, JSON.stringify({ sr: 16000 }));
  const r = cleave(["inspect", file, "--inputs", inputs]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr.trimEnd(),
    /^error: --inputs .*only-sr\.json: no value for input 'x' \(the file must give every input: x, sr\)$/,
  );
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
});

/** A `.npy` file (format 1.0) of an int64 array, written byte by byte as NumPy does. */
function writeNpyInt64(path: string, shape: number[], data: number[]): void {
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header += `${" ".repeat(63 - ((10 + header.length) % 64))}\n`;
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(BigInt64Array.from(data, (x) => BigInt(x)).buffer);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
}

test("--inputs name=file.npy gives an input's value", () => {
  const npy = join(dir, "sr.npy");
  writeNpyInt64(npy, [1], [16000]);
  const r = cleave(["inspect", file, "--inputs", `sr=${npy}`, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).folded.inlinedIfs, ["body"]);
});

test("an If on a bool input is decided by its given value", async () => {
  const b = new GraphBuilder("flagged", { seed: 1 });
  const x = b.input("x", "float32", SHAPE);
  const flag = b.input("flag", "bool", []);
  const y = b.node("If", [flag], {
    then_branch: branch("t", x, 1, b, true),
    else_branch: branch("e", x, 3, b, true),
  });
  b.output(y, "float32", SHAPE);
  const model = b.toModel();
  for (const [v, convs] of [
    [true, 1],
    [false, 3],
  ] as const) {
    const m = await analyzeModel(model, { inputValues: { flag: nestedValue(v, "test") } });
    assert.equal(m.graph.nodes.filter((n) => n.op === "Conv").length, convs, `flag=${v}`);
  }
});
