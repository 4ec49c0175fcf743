import assert from "node:assert/strict";
import { test } from "node:test";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { ReferenceCheck } from "../src/runtime/coordinator/reference-check.js";

async function model() {
  const b = new GraphBuilder("ref", { seed: 3 });
  const x = b.input("x", "float32", [1, 4, 9, 9]);
  b.output(b.node("Relu", [b.node("Conv", [x, b.weight("w", [4, 4, 3, 3])], { pads: [1, 1, 1, 1] })]));
  return analyzeModel(b.toModel(), { source: "ref" });
}

test("the reference check: exact outputs give 0, one changed element or a missing output is caught", async () => {
  const m = await model();
  const feeds = { x: randomTensor("float32", [1, 4, 9, 9], 1) };
  const check = await ReferenceCheck.create(m, feeds);
  const s = await createSession(m.graph.model);
  const got = (await s.run(feeds)) as Record<string, ort.Tensor>;
  await s.release();
  const name = m.graph.outputs[0].name;
  assert.equal(check.add(got), 0);
  const data = Float32Array.from(got[name].data as Float32Array);
  let big = 0;
  for (let i = 0; i < data.length; i++) if (Math.abs(data[i]) > Math.abs(data[big])) big = i;
  data[big] *= 1.001;
  const off = check.add({ [name]: new ort.Tensor("float32", data, got[name].dims) });
  assert.ok(off > 5e-4 && off < 2e-3, `relative difference ${off}`);
  assert.ok(check.add({}) === Number.POSITIVE_INFINITY);
  assert.equal(check.missingOutput, name);
  assert.equal(check.checked, 3);
  assert.equal(check.maxRelativeDiff, Number.POSITIVE_INFINITY);
});
