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

// Output files (atomic writes with one-line errors)
export { checkOutputFile, type OutputData, writeOutputFile } from "./output-file.js";

// ONNX I/O
export type { DType } from "./onnx/dtype.js";
export { GraphBuilder, valueInfo } from "./onnx/builder.js";
export {
  decodeModel,
  encodeModel,
  loadModel,
  PROTOBUF_LIMIT_BYTES,
  type SavedModel,
  type SaveOptions,
  saveModel,
} from "./onnx/model-io.js";
export {
  createSession,
  maxSessionThreads,
  ortLogLevel,
  randomTensor,
  type SessionOptions,
} from "./onnx/ort.js";
export { type NpyArray, readNpy } from "./onnx/npy.js";

// Graph IR, shapes, costs
export { Graph, type Node, type TensorType, type Value } from "./ir/graph.js";
export { type AnalyzedModel, type AnalyzeOptions, analyzeModel } from "./ir/analyze.js";
export { type FoldOptions, type FoldResult, foldModel, type UndecidedIf } from "./ir/fold.js";
export {
  checkInputValues,
  type FeedSource,
  type GivenInput,
  type InputValue,
  inputFeeds,
  nestedValue,
  parseInputValue,
  readInputsFiles,
} from "./ir/input-values.js";
export { inferShapes, type InferOptions, inferStatic, staticOps } from "./ir/shape-infer.js";
export { checkShapesWithOrt } from "./ir/shape-check.js";
export { type NodeCost, nodeCosts, sumCosts } from "./ir/cost.js";

// Model zoo
export { buildZooModel, type ZooInfo, type ZooTensor, zooInfo, zooNames } from "./zoo/index.js";

// Cuts and stage export
export { choosePartitionOrder, type PartitionOrder, orderWith } from "./partition/order.js";
export { balancedCuts, type Cut, enumerateCuts, isCleanCut } from "./partition/cuts.js";
export {
  assignByBoundaries,
  assignByTensors,
  type StageAssignment,
  validateAssignment,
} from "./partition/assign.js";
export { buildStages, type StageModel } from "./export/stage.js";
export { resolveSplit, type SplitSpec, splitModel } from "./export/split.js";
export type { Manifest, ManifestStage, StageDataFile, TensorSpec } from "./export/manifest.js";
export { readManifest } from "./export/manifest-io.js";
export { SequentialRunner } from "./export/run-sequential.js";

// Clusters, profiles, cost models
export type { Cluster, CoreCluster, Device, Link } from "./cluster/types.js";
export { loadCluster, parseCluster } from "./cluster/load.js";
export type { CostModel } from "./cost/cost-model.js";
export { ClusterCostModel, costModelFor } from "./cost/cost-factory.js";
export { loadProfile, type Profile, profileModel, saveProfile } from "./cost/profile.js";
export { type CachedProfile, cacheDir, cachedProfile } from "./cost/profile-cache.js";
export { estimateSplit, type SplitEstimate } from "./cost/estimate.js";
export {
  measureKernelTime,
  measureLatency,
  measurePaired,
  type PairedLatency,
} from "./cost/measure.js";

// Planning
export { OBJECTIVES, type Objective, type PlanConstraints } from "./partition/constraints.js";
export { makePlan, type PlanOutcome, type PlanRequest } from "./partition/planner.js";
export { type Plan, planToAssignment, readPlan, stageDevices, writePlan } from "./partition/plan.js";
export { type ClusterPlan, planForCluster, type RunnableSplit } from "./partition/plan-cluster.js";

// Spatial tiles and stages side by side (latency of one request)
export {
  stackNodes,
  type TiledModel,
  type TiledStack,
  type TileStackSpec,
  tileModel,
} from "./ir/tile.js";
export { type DagEvaluation, type DagStage, evaluateDag } from "./partition/evaluate-dag.js";
export { modelForPlan, type ParallelPlan, parallelPlanFor } from "./partition/plan-parallel.js";
export type { PlanTiles } from "./partition/plan.js";
export { buildProblem, type PlanProblem } from "./partition/problem.js";
export { planExact } from "./partition/planner-exact.js";
export { paretoFront } from "./partition/planner-pareto.js";
export { runBaselines, runReplicaBaselines } from "./partition/baselines.js";
export {
  evaluateReplicas,
  type ReplicaCandidate,
  type ReplicaEvaluation,
} from "./partition/evaluate-replicas.js";
export { planReplicas, type ReplicaPlanResult } from "./partition/planner-replicas.js";
export { estimateReplicaSplit, type ReplicaEstimate } from "./partition/replica-estimate.js";

// Compressed cuts: encodings, calibration, planning under a fidelity budget
export { ENCODINGS, type EncodingName, type TensorEncoding } from "./onnx/encoding.js";
export { encodeStages, type EncodedStages } from "./export/encode-stages.js";
export {
  Calibrator,
  calibrationInputs,
  type Fidelity,
  type FidelityBudget,
  meetsBudget,
  measureCodecTimes,
  withEncodings,
} from "./partition/calibrate.js";
export {
  chooseEncodings,
  type CodecTimes,
  encodedProblem,
  parseFidelityBudget,
} from "./partition/encodings.js";
export { type FidelityPlan, planWithFidelity } from "./partition/plan-fidelity.js";
export type { PlanEncodings } from "./partition/plan-encodings.js";

// Runtime
export { DEPLOY_CHUNK_BYTES, deploy, type DeployOptions } from "./runtime/coordinator/deploy.js";
export {
  DEFAULT_HEARTBEAT_MS,
  type LossCause,
  Pipeline,
  type PipelineBreak,
  type ReplicaLossEvent,
  type RunReport,
  type StageLoad,
  type WorkerAddress,
} from "./runtime/coordinator/pipeline.js";
export {
  Controller,
  type ControllerEvents,
  type ControllerOptions,
  type Deployable,
  type DeviceEvent,
  type RecoveryEvent,
  type Replan,
  type ReplanEvent,
  startController,
} from "./runtime/control/service.js";
export { reassignStages } from "./runtime/control/reassign.js";
export type { ReplicaStats } from "./runtime/coordinator/replicas.js";
export { type LocalCluster, startLocalWorkers } from "./runtime/coordinator/local-cluster.js";
export { Worker, type WorkerOptions } from "./runtime/worker/worker.js";
export type { AdmissionLimits } from "./runtime/transport/admission.js";
export type { TlsConfig } from "./runtime/transport/transport.js";
export { probeWorker } from "./runtime/coordinator/probe.js";
export { testbedDown, testbedUp } from "./harness/testbed.js";
export {
  type ReplicaMeasurement,
  type RunSplitResult,
  runSplit,
  type SplitMeasurement,
  type StageDevices,
} from "./runtime/coordinator/run-split.js";
export {
  BUDGET_ROW,
  type BenchBudget,
  type BenchOptions,
  type BenchResult,
  type BenchRow,
  benchCluster,
} from "./harness/bench.js";
export {
  type FaultRecoveryOptions,
  type FaultRecoveryResult,
  measureFaultRecovery,
} from "./harness/recovery.js";
export {
  benchFindings,
  fmtPercent,
  fmtRatio,
  pipelineEfficiency,
  predictionError,
  speedupOf,
  transferCpuPerByte,
  transferTimeMs,
} from "./harness/bench-figures.js";
export { type CoRunMeasurement, measureCoRun, withCoRun, withMeasuredCoRun } from "./harness/corun.js";
export {
  type EmulatedCosts,
  type LocalProfileNote,
  emulatedCosts,
  emulatedProfile,
  withLocalProfiles,
} from "./harness/emulated-profiles.js";

// Serving: the Open Inference Protocol over HTTP, metrics, pre- and post-processing layers
export {
  type DecodedRequest,
  decodeInferRequest,
  encodeInferResponse,
  type ModelSignature,
  modelMetadata,
} from "./serve/codec.js";
export { type InferenceServerOptions, InferenceServer, type ServedModel } from "./serve/server.js";
export { AdmissionQueue } from "./serve/queue.js";
export { type MetricsSource, ServeMetrics, workerMetricsRegistry } from "./serve/metrics.js";
export { type MetricsEndpoint, serveMetrics } from "./serve/metrics-http.js";
export { deployForServing, type ServedSplit, type ServeSplitOptions } from "./serve/serve-split.js";
export { decodeImage, withEncodedImageInput } from "./serve/image-input.js";
export {
  appendTopK,
  type ImagePreprocess,
  parsePostprocess,
  parsePreprocess,
  prependImagePreprocess,
  type TopKPostprocess,
} from "./onnx/preprocess.js";

// Report
export { reportInputFrom } from "./report/report-input.js";
export { renderReportHtml } from "./report/report-html.js";
export { readBenchFile } from "./report/report-bench.js";

export { VERSION } from "./version.js";
