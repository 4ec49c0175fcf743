import { SequentialRunner } from "../../src/export/run-sequential.js";
import { buildStages } from "../../src/export/stage.js";
import type { AnalyzedModel } from "../../src/ir/analyze.js";
import { createSession, type ort, randomTensor } from "../../src/onnx/ort.js";
import { modelForPlan } from "../../src/partition/plan-parallel.js";
import { planToAssignment } from "../../src/partition/plan.js";
import { assertOutputsClose } from "./compare.js";

const EXACT = { optimization: "disabled" } as const;

/** Runs the plan's stages (rebuilt from its JSON alone) one after another and compares with the whole model. */
export async function assertReproduces(
  model: AnalyzedModel,
  planJson: unknown,
  label: string,
): Promise<void> {
  const plan = JSON.parse(JSON.stringify(planJson));
  const tiled = await modelForPlan(model, plan);
  const stages = buildStages(tiled, planToAssignment(tiled, plan));
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of model.graph.inputs) {
    const t = model.types.get(v.name)!;
    feeds[v.name] = randomTensor(t.dtype, t.shape, 5);
  }
  const whole = await createSession(model.graph.model, EXACT);
  const want = (await whole.run(feeds)) as Record<string, ort.Tensor>;
  await whole.release();
  const runner = await SequentialRunner.fromStages(
    stages,
    model.graph.outputs.map((v) => v.name),
    EXACT,
  );
  assertOutputsClose(await runner.run(feeds), want, label);
  await runner.close();
}
