import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type ModelProto, ValueInfoProtoSchema } from "onnx-buf";
import { Graph, type TensorType } from "../../src/ir/graph.js";
import { checkShapesWithOrt } from "../../src/ir/shape-check.js";
import { inferShapes } from "../../src/ir/shape-infer.js";
import type { GraphBuilder } from "../../src/onnx/builder.js";

/** The builder's model with `outputs` added as untyped graph outputs (onnxruntime accepts them). */
export function finishGraph(b: GraphBuilder, outputs: readonly string[]): Graph {
  const m = b.toModel();
  for (const name of outputs) m.graph!.output.push(create(ValueInfoProtoSchema, { name }));
  return new Graph(m, { source: b.name });
}

/**
 * Infers every tensor's type, then runs the model in onnxruntime with every intermediate tensor exposed as an
 * output and asserts each inferred dims/dtype equals what onnxruntime produced. Returns the inferred types.
 */
export async function assertShapesMatchOrt(
  model: Graph | ModelProto,
  inputShapes: Record<string, number[]> = {},
  label = "model",
): Promise<Map<string, TensorType>> {
  const graph = model instanceof Graph ? model : new Graph(model, { source: label });
  const types = await inferShapes(graph, { inputShapes });
  const { checked, mismatches } = await checkShapesWithOrt(graph, types);
  const show = (t: TensorType | undefined) => (t ? `${t.dtype}[${t.shape.join(",")}]` : "none");
  assert.deepEqual(
    mismatches.map(
      (m) => `${m.node} (${m.op}) '${m.tensor}': inferred ${show(m.inferred)}, onnxruntime ${show(m.actual)}`,
    ),
    [],
    `${label}: inferred types differ from onnxruntime's`,
  );
  const nodeOutputs = graph.nodes.flatMap((n) => n.outputs.filter((o) => o !== ""));
  assert.equal(checked, nodeOutputs.length, `${label}: every node output was compared`);
  return types;
}
