/**
 * cleave's library API: import ONNX models into a validated graph with shapes and costs, enumerate cuts,
 * plan splits across devices, write stage models, and run them as a distributed pipeline.
 */

// Errors
export {
  ArgumentError,
  CleaveError,
  type ErrorCode,
  type ErrorContext,
  ModelError,
  RuntimeFault,
} from "./errors.js";

// ONNX I/O
export type { DType } from "./onnx/dtype.js";
export { GraphBuilder, valueInfo } from "./onnx/builder.js";
export { decodeModel, encodeModel, loadModel, saveModel, type SaveOptions } from "./onnx/model-io.js";
export { createSession, randomTensor, type SessionOptions } from "./onnx/ort.js";

// Graph IR, shapes, costs
export { Graph, type Node, type TensorType, type Value } from "./ir/graph.js";
export { type AnalyzedModel, type AnalyzeOptions, analyzeModel } from "./ir/analyze.js";
export { inferShapes, type InferOptions } from "./ir/shape-infer.js";
export { type NodeCost, nodeCosts, sumCosts } from "./ir/cost.js";

// Model zoo
export { buildZooModel, zooInfo, zooNames } from "./zoo/index.js";

// Cuts and stage export
export { choosePartitionOrder, type PartitionOrder, orderWith } from "./partition/order.js";
export { balancedCuts, type Cut, enumerateCuts, isCleanCut } from "./partition/cuts.js";
export {
  assignByBoundaries,
  assignByTensors,
  type StageAssignment,
  validateAssignment,
} from "./export/assign.js";
export { buildStages, type StageModel } from "./export/stage.js";
export { resolveSplit, type SplitSpec, splitModel } from "./export/split.js";
export type { Manifest, ManifestStage, TensorSpec } from "./export/manifest.js";
export { readManifest } from "./export/manifest-io.js";
export { SequentialRunner } from "./export/run-sequential.js";

export { VERSION } from "./version.js";
