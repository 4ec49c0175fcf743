import { create } from "@bufbuild/protobuf";
import {
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  type TensorProto,
  TensorProto_DataType as DT,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import type { AnalyzedModel } from "../ir/analyze.js";
import { valueInfo } from "../onnx/builder.js";
import type { DType } from "../onnx/dtype.js";
import { tensorDims, numel } from "../onnx/tensor.js";
import { typeBytes } from "../ir/graph.js";
import { type StageAssignment, validateAssignment } from "../partition/assign.js";

/** One stage of a split model, in memory. */
export interface StageModel {
  index: number;
  /** A valid ONNX model running this stage's nodes. */
  model: ModelProto;
  /** Activations the stage reads: model inputs or outputs of earlier stages. */
  inputs: string[];
  /** Tensors it produces for later stages or the caller. */
  outputs: string[];
  /** Graph node indices it runs (compute nodes; Constant nodes it needs are copied in too). */
  nodes: number[];
  /** Float weight elements it holds (shared weights counted in every stage that reads them). */
  params: number;
  paramBytes: number;
  macs: number;
  bytesIn: number;
  bytesOut: number;
  /** Types of tensors the source model does not have (encoded cut tensors such as `X::u8`). */
  tensorTypes?: Record<string, { name: string; shape: number[]; dtype: DType }>;
}

const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.FLOAT16, DT.BFLOAT16, DT.DOUBLE]);

/**
 * Builds the stage models of an assignment. Each stage has exactly the inputs it needs, exactly the outputs
 * later stages or the caller need, only the initializers and Constant nodes it reads (copied per stage),
 * subgraphs kept whole with their node, opset/IR version/functions preserved, original tensor names.
 * Weights are shared by reference with the source model (no copy until encoding).
 */
export function buildStages(model: AnalyzedModel, a: StageAssignment): StageModel[] {
  validateAssignment(model, a);
  const { graph, types, costs } = model;
  const src = graph.model;
  const g = src.graph!;
  const graphInputInfo = new Map(g.input.map((vi) => [vi.name, vi]));
  const graphOutputInfo = new Map(g.output.map((vi) => [vi.name, vi]));
  const innerInfo = new Map(g.valueInfo.map((vi) => [vi.name, vi]));

  // Latest stage that reads each value (compute consumers only); -1 when none.
  const lastReader = new Map<string, number>();
  for (const node of graph.nodes) {
    if (node.isConstant) continue;
    const s = a.stageOf[node.index];
    for (const name of [...node.inputs, ...node.implicitInputs]) {
      if (name !== "" && (lastReader.get(name) ?? -1) < s) lastReader.set(name, s);
    }
  }
  const members: number[][] = Array.from({ length: a.count }, () => []);
  for (const node of graph.nodes) if (!node.isConstant) members[a.stageOf[node.index]].push(node.index);
  // Graph outputs made by Constant nodes (rare) are produced by the last stage.
  const constOutputs = graph.outputs.filter((v) => v.producer?.isConstant).map((v) => v.producer!.index);
  members[a.count - 1].push(...constOutputs);

  const info = (name: string): ValueInfoProto => {
    const orig = graphInputInfo.get(name) ?? graphOutputInfo.get(name);
    if (orig) return orig;
    const t = types.get(name);
    return t ? valueInfo(name, t.dtype, t.shape) : create(ValueInfoProtoSchema, { name });
  };

  return members.map((nodeIdx, s) => {
    const nodeSet = new Set(nodeIdx);
    const produced = new Set<string>();
    for (const i of nodeIdx) for (const o of graph.nodes[i].outputs) if (o !== "") produced.add(o);
    const needed = new Set<string>();
    for (const i of nodeIdx) {
      const node = graph.nodes[i];
      for (const name of [...node.inputs, ...node.implicitInputs]) if (name !== "") needed.add(name);
    }
    const inits: TensorProto[] = [];
    const constNodes: NodeProto[] = [];
    const inputs: string[] = [];
    let params = 0;
    let paramBytes = 0;
    const countWeight = (t: TensorProto | undefined) => {
      if (t && FLOAT_TYPES.has(t.dataType)) {
        params += numel(tensorDims(t));
        paramBytes += typeBytes(types.get(t.name)) || t.rawData.length;
      }
    };
    for (const name of needed) {
      if (produced.has(name)) continue;
      const v = graph.values.get(name)!;
      if (v.kind === "initializer") {
        inits.push(v.initializer!);
        countWeight(v.initializer);
      } else if (v.producer?.isConstant) {
        if (!nodeSet.has(v.producer.index)) constNodes.push(v.producer.proto);
        countWeight(graph.constantTensor(name));
      } else {
        inputs.push(name);
      }
    }
    for (const i of nodeIdx)
      if (graph.nodes[i].isConstant) countWeight(graph.constantTensor(graph.nodes[i].outputs[0]));
    const outputs = [...produced].filter((name) => {
      const v = graph.values.get(name)!;
      return v.isOutput || (lastReader.get(name) ?? -1) > s;
    });
    // Inputs in the order of the source graph's inputs first, then by producer position.
    const rank = (name: string) => {
      const v = graph.values.get(name)!;
      return v.producer ? v.producer.index : -1 - g.input.length + g.input.findIndex((x) => x.name === name);
    };
    inputs.sort((x, y) => rank(x) - rank(y));
    outputs.sort((x, y) => rank(x) - rank(y));
    const stageGraph = create(GraphProtoSchema, {
      name: `${g.name || "model"}_stage${s}`,
      node: [...constNodes, ...nodeIdx.map((i) => graph.nodes[i].proto)],
      initializer: inits,
      input: inputs.map(info),
      output: outputs.map(info),
      valueInfo: [...produced]
        .filter((n) => innerInfo.has(n) && !outputs.includes(n))
        .map((n) => innerInfo.get(n)!),
    });
    const stageModel = create(ModelProtoSchema, {
      irVersion: src.irVersion,
      opsetImport: src.opsetImport,
      producerName: src.producerName || "cleave",
      producerVersion: src.producerVersion,
      domain: src.domain,
      modelVersion: src.modelVersion,
      functions: src.functions,
      graph: stageGraph,
    });
    return {
      index: s,
      model: stageModel,
      inputs,
      outputs,
      nodes: nodeIdx.filter((i) => !graph.nodes[i].isConstant),
      params,
      paramBytes,
      macs: nodeIdx.reduce((acc, i) => acc + costs[i].macs, 0),
      bytesIn: inputs.reduce((acc, n) => acc + typeBytes(types.get(n)), 0),
      bytesOut: outputs.reduce((acc, n) => acc + typeBytes(types.get(n)), 0),
    };
  });
}
