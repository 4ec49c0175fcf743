import assert from "node:assert/strict";
import { test } from "node:test";
import { ArgumentError } from "../src/errors.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds, nestedValue, parseInputValue } from "../src/ir/input-values.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { createSession } from "../src/onnx/ort.js";

/** A BERT-like front: int64 token ids [batch, seq] through a 2-row embedding, masked by an int64 mask. */
function embeddingModel() {
  const b = new GraphBuilder("embed", { seed: 8 });
  const ids = b.input("ids", "int64", ["batch", "seq"]);
  const mask = b.input("mask", "int64", ["batch", "seq"]);
  const x = b.input("x", "float32", [1, 4]);
  const emb = b.node("Gather", [b.weight("table", [2, 4]), ids], { axis: 0 });
  const m = b.node("Unsqueeze", [b.node("Cast", [mask], { to: 1 }), b.ints("axes", [2])]);
  const y = b.node("Add", [b.node("Mul", [emb, m]), x]);
  b.output(y, "float32");
  return b.toModel();
}

test("integer inputs without values are fed zeros (valid indices), floats seeded random, given values as given", async () => {
  const model = embeddingModel();
  const m = await analyzeModel(model, {
    inputShapes: { ids: [1, 3] },
    inputValues: { mask: nestedValue([[1, 1, 0]], "test") },
  });
  assert.deepEqual(m.types.get("mask")!.shape, [1, 3], "the mask's value fixes its symbolic [batch, seq]");
  const feeds = inputFeeds(m);
  assert.deepEqual(Array.from(feeds.ids.data as BigInt64Array, Number), [0, 0, 0]);
  assert.deepEqual(Array.from(feeds.mask.data as BigInt64Array, Number), [1, 1, 0]);
  const xs = Array.from(feeds.x.data as Float32Array);
  assert.ok(xs.every((v) => v >= -1 && v < 1) && new Set(xs).size === xs.length, "seeded random floats");
  assert.deepEqual(inputFeeds(m).x.data, feeds.x.data, "the same seed gives the same floats");
  // A 2-row table: random indices in [0, 4) would be out of range; zeros run.
  const s = await createSession(model);
  const out = await s.run(feeds);
  await s.release();
  assert.deepEqual(out[m.graph.outputs[0].name].dims, [1, 3, 4]);
});

const BAD: Array<[string, () => unknown, RegExp]> = [
  [
    "no '='",
    () => parseInputValue("16000"),
    /^--input-value: expected name=16000 or name=\[1,2,3\], got '16000'$/,
  ],
  [
    "ragged lists",
    () => parseInputValue("ids=[[1,2],[3]]"),
    /^--input-value ids: nested lists must be rectangular/,
  ],
  ["a string", () => parseInputValue('ids=["a"]'), /^--input-value ids: expected numbers, got "a"$/],
];
for (const [label, fn, re] of BAD) {
  test(`--input-value parsing: ${label} is an ArgumentError`, () => {
    assert.throws(fn, (err: unknown) => err instanceof ArgumentError && re.test(err.message));
  });
}

test("a bool input takes 0/1 or true/false and nothing else", async () => {
  const b = new GraphBuilder("flag", { seed: 1 });
  const f = b.input("f", "bool", [2]);
  b.output(b.node("Not", [f]), "bool", [2]);
  const model = b.toModel();
  const m = await analyzeModel(model, { inputValues: { f: nestedValue([true, 0], "--input-value f") } });
  assert.deepEqual(Array.from(inputFeeds(m).f.data as Uint8Array), [1, 0]);
  await assert.rejects(
    analyzeModel(model, { inputValues: { f: nestedValue([2, 0], "--input-value f") } }),
    /^ArgumentError: --input-value f: input 'f' is bool, got 2 \(give 0\/1 or true\/false\)$/,
  );
});
