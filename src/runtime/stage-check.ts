import { fromBinary } from "@bufbuild/protobuf";
import { type GraphProto, ModelProtoSchema, type TensorProto, TensorProto_DataLocation } from "onnx-buf";
import { errorMessage, RuntimeFault } from "../errors.js";

/** Calls `fn` on every tensor of a graph, sparse ones and those of subgraphs included. */
function eachTensor(graph: GraphProto, fn: (t: TensorProto) => void): void {
  for (const t of graph.initializer) fn(t);
  for (const s of graph.sparseInitializer) {
    if (s.values) fn(s.values);
    if (s.indices) fn(s.indices);
  }
  for (const n of graph.node)
    for (const a of n.attribute) {
      if (a.t) fn(a.t);
      for (const t of a.tensors) fn(t);
      for (const s of [...(a.sparseTensor ? [a.sparseTensor] : []), ...a.sparseTensors]) {
        if (s.values) fn(s.values);
        if (s.indices) fn(s.indices);
      }
      if (a.g) eachTensor(a.g, fn);
      for (const g of a.graphs) eachTensor(g, fn);
    }
}

/**
 * The external data locations a stage model's tensors name (each once), read from its bytes without opening
 * any file. A worker compares them with the data file streamed with the stage: onnxruntime would otherwise read
 * whatever path a location names on the worker's disk. Throws a RuntimeFault naming `file` for bytes that are
 * not a model.
 */
export function stageExternalData(bytes: Uint8Array, file: string): string[] {
  let graph: GraphProto | undefined;
  try {
    graph = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: false }).graph;
  } catch (err) {
    throw new RuntimeFault("RUNTIME", `${file}: not a valid ONNX model (${errorMessage(err)})`, { file });
  }
  const out = new Set<string>();
  if (graph)
    eachTensor(graph, (t) => {
      if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL && t.externalData.length === 0) return;
      const location = t.externalData.find((e) => e.key === "location")?.value ?? "";
      out.add(location);
    });
  return [...out];
}
