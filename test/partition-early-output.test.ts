import assert from "node:assert/strict";
import { test } from "node:test";
import { equalPair } from "./helpers/pair.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { buildStages } from "../src/export/stage.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { modelForPlan, parallelPlanFor } from "../src/partition/plan-parallel.js";
import { planToAssignment } from "../src/partition/plan.js";
import { makePlan } from "../src/partition/planner.js";
import { firstOutputPosition, tileCandidates } from "../src/partition/tile-candidates.js";
import { assertOutputsClose } from "./helpers/compare.js";

const EXACT = { optimization: "disabled" } as const;

/** A conv chain with a second graph output made early (a Sigmoid head on the first layer) that nothing else reads. */
function earlyOutput() {
  const b = new GraphBuilder("early", { seed: 2 });
  let h = b.input("x", "float32", [1, 8, 64, 64]);
  h = b.node("Relu", [b.node("Conv", [h, b.weight("w0", [32, 8, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(b.node("Sigmoid", [h]));
  for (let i = 1; i < 7; i++)
    h = b.node("Relu", [b.node("Conv", [h, b.weight(`w${i}`, [32, 32, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(h);
  return b.toModel();
}

const pair = () => equalPair("1Gbit/s", "pair");

for (const tiles of [undefined, 2] as const) {
  test(`a graph output made early: the ${tiles ? "forced 2-tile" : "latency"} plan keeps its layer in a stage and reproduces both outputs`, async () => {
    const model = await analyzeModel(earlyOutput(), { source: "early" });
    const cluster = pair();
    const cost = costModelFor(model, cluster);
    const out = makePlan({ model, modelPath: "early.onnx", cluster, cost, objective: "latency" });
    const first = firstOutputPosition(model, out.order);
    assert.ok(first < out.order.nodes.length - 1, "the Sigmoid output comes before the last layer");
    // No tile stack holds the Sigmoid: a stack replaces only what lies between its two tensors.
    for (const c of tileCandidates(model, out.order)) assert.ok(!(c.start <= first && first < c.end - 1));
    const par = await parallelPlanFor(
      out.plan,
      model,
      out.order,
      out.problem,
      cluster,
      cost,
      tiles ? { tiles } : {},
    );
    const plan = par?.plan ?? out.plan;
    if (tiles) assert.ok(par && (plan.tiles?.stacks.length ?? 0) >= 1, "a tiled plan");
    assert.ok(plan.stages.some((s) => s.nodes.includes("sigmoid")));
    const json = JSON.parse(JSON.stringify(plan));
    const tiled = await modelForPlan(model, json);
    const stages = buildStages(tiled, planToAssignment(tiled, json));
    const feeds = { x: randomTensor("float32", [1, 8, 64, 64], 9) };
    const whole = await createSession(model.graph.model, EXACT);
    const want = (await whole.run(feeds)) as Record<string, ort.Tensor>;
    await whole.release();
    assert.equal(Object.keys(want).length, 2);
    const runner = await SequentialRunner.fromStages(
      stages,
      model.graph.outputs.map((v) => v.name),
      EXACT,
    );
    assertOutputsClose(await runner.run(feeds), want, "early-output plan");
    await runner.close();
  });
}
