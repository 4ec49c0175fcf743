import assert from "node:assert/strict";
import { test } from "node:test";
import { ArgumentError } from "../src/errors.js";
import { Graph } from "../src/ir/graph.js";
import { inferShapes, inferStatic } from "../src/ir/shape-infer.js";
import { loadModel } from "../src/onnx/model-io.js";
import { buildZooModel, zooInfo, zooNames } from "../src/zoo/index.js";
import { OCR_MODELS, OCR_SHAPES } from "./helpers/models.js";
import { assertShapesMatchOrt } from "./helpers/shapes.js";

// Real exported models: every intermediate tensor's inferred type must equal onnxruntime's, and the static
// pass alone must resolve them all (the OCR models are opset 9/11 exports full of Constant/Shape arithmetic).
for (const key of Object.keys(OCR_MODELS) as (keyof typeof OCR_MODELS)[]) {
  test(`PP-OCR ${key}: inferred shapes equal onnxruntime's for every tensor`, async () => {
    const graph = new Graph(loadModel(OCR_MODELS[key]), { source: key });
    const st = inferStatic(graph, { inputShapes: OCR_SHAPES[key] });
    assert.deepEqual(st.unresolved, []);
    const types = await assertShapesMatchOrt(graph, OCR_SHAPES[key], key);
    assert.equal(types.size, graph.values.size, "every value of the graph has a type");
  });
}

test("PP-OCR det without --input-shape: symbolic H and W are refused with a hint", async () => {
  const graph = new Graph(loadModel(OCR_MODELS.det), { source: "det" });
  await assert.rejects(
    inferShapes(graph),
    (e: unknown) =>
      e instanceof ArgumentError &&
      /^input 'x' has symbolic dimensions \[p2o\.DynamicDimension\.0, 3, p2o\.DynamicDimension\.1, p2o\.DynamicDimension\.2\]: give its shape with --input-shape x=1x3x224x224$/.test(
        e.message,
      ),
  );
});

for (const name of zooNames()) {
  test(`zoo ${name}: inferred shapes equal onnxruntime's for every tensor`, async () => {
    const graph = new Graph(buildZooModel(name), { source: name });
    assert.deepEqual(inferStatic(graph).unresolved, []);
    const types = await assertShapesMatchOrt(graph, {}, name);
    for (const o of zooInfo(name).outputs) assert.deepEqual(types.get(o.name)?.shape, o.shape, o.name);
  });
}
