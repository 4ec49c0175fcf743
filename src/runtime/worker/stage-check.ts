import { fromBinary } from "@bufbuild/protobuf";
import { type GraphProto, ModelProtoSchema, type TensorProto, TensorProto_DataLocation } from "onnx-buf";
import { errorMessage, RuntimeFault } from "../../errors.js";
import type { LoadMsg } from "../transport/protocol.js";

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

/**
 * What the schema cannot say about a `load`: every route names one of the deployment's workers at the endpoint
 * the deployment gives it, each output has routes, and packed outputs are outputs. Returns what is wrong, or undefined.
 */
export function checkLoad(m: LoadMsg): string | undefined {
  const workers = new Map(m.workers.map((w) => [w.worker, w.endpoint]));
  for (const p of m.packed ?? [])
    if (!m.outputs.includes(p)) return `packed names '${p.slice(0, 64)}', which is not an output`;
  for (const [out, routes] of Object.entries(m.routes)) {
    if (!m.outputs.includes(out)) return `routes name '${out.slice(0, 64)}', which is not an output`;
    for (const r of routes) {
      if (r.to !== "stage") continue;
      for (const t of r.replicas)
        if (workers.get(t.worker) !== t.endpoint)
          return `a route to stage ${r.stage} points at ${t.worker.slice(0, 64)} at ${t.endpoint.slice(0, 64)}, which is not one of the deployment's workers`;
    }
  }
  return undefined;
}
