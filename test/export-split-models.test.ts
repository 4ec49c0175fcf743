import assert from "node:assert/strict";
import { test } from "node:test";
import { assignByBoundaries } from "../src/partition/assign.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { buildStages } from "../src/export/stage.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { balancedCuts, enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildZooModel, zooNames } from "../src/zoo/index.js";
import { assertOutputsClose } from "./helpers/compare.js";
import { OCR_MODELS, OCR_SHAPES } from "./helpers/models.js";

/** Up to `k` cut indices spread evenly over 1..n-1, plus multi-tensor cuts so those are always covered. */
function spreadCuts(n: number, multi: number[], k = 20): number[] {
  const picked = new Set<number>();
  const count = Math.min(k, n - 1);
  for (let i = 0; i < count; i++) picked.add(1 + Math.floor((i * (n - 1)) / count));
  for (const m of multi.slice(0, 5)) picked.add(m);
  return [...picked].sort((a, b) => a - b);
}

/**
 * Graph optimisations are off on both sides: then the stages run exactly the model's operators, so any
 * difference is a fault of the split. (With all optimisations on, onnxruntime folds Conv+BatchNormalization
 * only when both sit in one stage, which moves outputs by float rounding; bench/split-numerics measures that.)
 */
const EXACT = { optimization: "disabled" } as const;

async function checkModel(label: string, model: AnalyzedModel): Promise<void> {
  const order = choosePartitionOrder(model);
  const cuts = enumerateCuts(model, order);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [i, v] of model.graph.inputs.entries()) {
    const t = model.types.get(v.name)!;
    feeds[v.name] = randomTensor(t.dtype, t.shape, 100 + i);
  }
  const full = await createSession(model.graph.model, EXACT);
  const want = await full.run(feeds);
  await full.release();
  const outputs = model.graph.outputs.map((v) => v.name);
  const multi = cuts.filter((c) => c.tensors.length > 1).map((c) => c.index);
  const n = order.nodes.length;
  const splits: number[][] = spreadCuts(n, multi).map((c) => [c]);
  splits.push(balancedCuts(model, order, 3, cuts), balancedCuts(model, order, 4, cuts));
  for (const boundaries of splits) {
    const stages = buildStages(model, assignByBoundaries(model, order, boundaries));
    const runner = await SequentialRunner.fromStages(stages, outputs, EXACT);
    assertOutputsClose(await runner.run(feeds), want, `${label} cuts [${boundaries}]`);
    await runner.close();
  }
  assert.ok(splits.length >= Math.min(20, n - 1) + 2);
}

for (const name of zooNames()) {
  test(`zoo ${name}: 2-stage splits at >= 20 cuts and 3-/4-stage splits reproduce the model`, async () => {
    await checkModel(name, await analyzeModel(buildZooModel(name), { source: name }));
  });
}

for (const [name, path] of Object.entries(OCR_MODELS)) {
  test(`PP-OCR ${name}: 2-stage splits at >= 20 cuts and 3-/4-stage splits reproduce the model`, async () => {
    await checkModel(
      name,
      await analyzeModel(path, { inputShapes: OCR_SHAPES[name as keyof typeof OCR_MODELS] }),
    );
  });
}
