import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, ModelProtoSchema, type NodeProto, type TensorProto } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { valueInfo } from "../onnx/builder.js";
import { dtypeSize } from "../onnx/dtype.js";
import {
  baseEncoding,
  decodeNodes,
  encodedDType,
  encodedName,
  encodedShape,
  encodeNodes,
  type TensorEncoding,
} from "../onnx/encoding.js";
import type { TensorSpec } from "./manifest.js";
import type { StageAssignment } from "../partition/assign.js";
import { buildStages, type StageModel } from "./stage.js";

/** Stage models with encoded cut tensors, the devices of each (an encoder stage first when one is needed). */
export interface EncodedStages {
  stages: StageModel[];
  /** The devices given, with the input device first when an encoder stage was added. */
  devices?: (string | readonly string[])[];
  /** True when stage 0 only encodes graph inputs on the input device. */
  encoderStage: boolean;
}

/**
 * Rewrites stage models so cut tensors travel encoded: the producing stage ends with the encode nodes and
 * outputs `X::u8` (or `X::f16`...) instead of X, each consuming stage starts with the decode nodes and reads the
 * wire tensor. A graph input sent encoded is encoded by a stage of its own on `inputDevice` (stage 0, which
 * only encodes), except for stages that run on the input device alone, which read it as it is. Tensors that
 * are graph outputs stay as they are. Names in `encodings` must be tensors of the model, else a one-line error.
 */
export function encodeStages(
  model: AnalyzedModel,
  stages: readonly StageModel[],
  encodings: readonly TensorEncoding[],
  opts: {
    devices?: readonly (string | readonly string[])[];
    inputDevice?: string;
    /**
     * Also send float32 graph inputs from the input device through a stage there (as `X::f32`), so a split
     * that reads them elsewhere pays for the input device's link as the planner priced it (benchmarks: the
     * coordinator would otherwise send them straight to the reading device).
     */
    relayInputs?: boolean;
  } = {},
): EncodedStages {
  // float32+sparse changes no stage model: the sending worker packs the tensor (LoadMsg.packed).
  const enc = new Map(
    encodings.filter((e) => baseEncoding(e.encoding) !== "float32").map((e) => [e.tensor, e]),
  );
  if (opts.relayInputs)
    for (const v of model.graph.inputs)
      if (!enc.has(v.name) && model.types.get(v.name)?.dtype === "float32")
        enc.set(v.name, { tensor: v.name, encoding: "float32" });
  for (const t of enc.keys())
    if (!model.types.has(t))
      throw new ArgumentError(`encodings: '${t}' is not a tensor of the model`, {
        tensor: t,
        field: "encodings",
      });
  if (enc.size === 0)
    return {
      stages: [...stages],
      devices: opts.devices ? [...opts.devices] : undefined,
      encoderStage: false,
    };
  const graphInputs = new Set(model.graph.inputs.map((v) => v.name));
  const graphOutputs = new Set(model.graph.outputs.map((v) => v.name));
  const onInputDevice = (s: number) => {
    const g = opts.devices?.[s];
    const list = g === undefined ? [] : typeof g === "string" ? [g] : [...g];
    return opts.inputDevice !== undefined && list.length === 1 && list[0] === opts.inputDevice;
  };
  const spec = (name: string): TensorSpec => {
    const t = model.types.get(name);
    return { name, shape: t?.shape ?? [], dtype: t?.dtype ?? "float32" };
  };
  const wireSpec = (e: TensorEncoding): TensorSpec => ({
    name: e.encoding === "float32" ? `${e.tensor}::f32` : encodedName(e.tensor, e.encoding),
    shape: encodedShape(e.encoding, spec(e.tensor).shape, e.tensor),
    dtype: encodedDType(e.encoding),
  });
  const bytesOf = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1) * dtypeSize(s.dtype);
  const encodedInputs = new Set<string>();
  const out: StageModel[] = stages.map((st) => {
    const g = st.model.graph!;
    const pre: NodeProto[] = [];
    const post: NodeProto[] = [];
    const inits: TensorProto[] = [...g.initializer];
    const types: Record<string, TensorSpec> = {};
    const inputs = st.inputs.map((name) => {
      const e = enc.get(name);
      if (!e || graphOutputs.has(name) || (graphInputs.has(name) && onInputDevice(st.index)))
        return spec(name);
      if (graphInputs.has(name)) encodedInputs.add(name);
      const w = wireSpec(e);
      const d = decodeNodes(e, w.name, name, spec(name).shape);
      pre.push(...d.nodes);
      inits.push(...d.initializers);
      types[w.name] = w;
      return w;
    });
    const outputs = st.outputs.map((name) => {
      const e = enc.get(name);
      if (!e || e.encoding === "float32" || graphOutputs.has(name)) return spec(name);
      const w = wireSpec(e);
      const c = encodeNodes(e, name, w.name, spec(name).shape);
      post.push(...c.nodes);
      inits.push(...c.initializers);
      types[w.name] = w;
      return w;
    });
    const model_ = create(ModelProtoSchema, {
      ...st.model,
      graph: create(GraphProtoSchema, {
        ...g,
        node: [...pre, ...g.node, ...post],
        initializer: inits,
        input: inputs.map((s) =>
          types[s.name] ? valueInfo(s.name, s.dtype, s.shape) : g.input.find((v) => v.name === s.name)!,
        ),
        output: outputs.map((s) =>
          types[s.name] ? valueInfo(s.name, s.dtype, s.shape) : g.output.find((v) => v.name === s.name)!,
        ),
      }),
    });
    return {
      ...st,
      model: model_,
      inputs: inputs.map((s) => s.name),
      outputs: outputs.map((s) => s.name),
      bytesIn: inputs.reduce((a, s) => a + bytesOf(s), 0),
      bytesOut: outputs.reduce((a, s) => a + bytesOf(s), 0),
      tensorTypes: { ...(st.tensorTypes ?? {}), ...types },
    };
  });
  if (encodedInputs.size === 0)
    return { stages: out, devices: opts.devices ? [...opts.devices] : undefined, encoderStage: false };
  if (opts.inputDevice === undefined)
    throw new ArgumentError("encodings: a graph input is sent encoded, so the split needs the input device", {
      field: "inputDevice",
    });
  // Stage 0 encodes the graph inputs on the input device: it holds them, and the link is what is slow.
  const src = stages[0].model;
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const types: Record<string, TensorSpec> = {};
  const ins = [...encodedInputs];
  for (const name of ins) {
    const e = enc.get(name)!;
    const w = wireSpec(e);
    const c = encodeNodes(e, name, w.name, spec(name).shape);
    nodes.push(...c.nodes);
    inits.push(...c.initializers);
    types[w.name] = w;
  }
  const outs = Object.values(types);
  const encoder: StageModel = {
    index: 0,
    model: create(ModelProtoSchema, {
      ...src,
      graph: create(GraphProtoSchema, {
        name: `${src.graph!.name}_encode`,
        node: nodes,
        initializer: inits,
        input: ins.map((n) => valueInfo(n, spec(n).dtype, spec(n).shape)),
        output: outs.map((s) => valueInfo(s.name, s.dtype, s.shape)),
      }),
    }),
    inputs: ins,
    outputs: outs.map((s) => s.name),
    nodes: [],
    params: 0,
    paramBytes: 0,
    macs: 0,
    bytesIn: ins.reduce((a, n) => a + bytesOf(spec(n)), 0),
    bytesOut: outs.reduce((a, s) => a + bytesOf(s), 0),
    tensorTypes: types,
  };
  return {
    stages: [encoder, ...out.map((s) => ({ ...s, index: s.index + 1 }))],
    devices: opts.devices ? [opts.inputDevice, ...opts.devices] : undefined,
    encoderStage: true,
  };
}

/**
 * A split's stage models with `encodings` applied (see {@link encodeStages}) and the devices of each deployed
 * stage as lists: what run, serve and a live switch deploy.
 */
export function encodedSplit(
  model: AnalyzedModel,
  assignment: StageAssignment,
  devices: readonly (string | readonly string[])[],
  encodings: readonly TensorEncoding[],
  opts: { inputDevice?: string; relayInputs?: boolean } = {},
): { stages: StageModel[]; devices: string[][]; encoderStage: boolean } {
  const planned = devices.map((g) => (typeof g === "string" ? [g] : [...g]));
  const e = encodeStages(model, buildStages(model, assignment), encodings, { ...opts, devices: planned });
  return {
    stages: e.stages,
    devices: (e.devices ?? planned).map((g) => (typeof g === "string" ? [g] : [...g])),
    encoderStage: e.encoderStage,
  };
}

/**
 * Replica weights by the plan's stage indices, as the deployed stages read them: an encoder stage put first
 * shifts them by one (and has no weights of its own).
 */
export function deployedWeights(
  weights: ((stage: number, device: string) => number | undefined) | undefined,
  encoderStage: boolean,
): ((stage: number, device: string) => number | undefined) | undefined {
  return weights && encoderStage
    ? (stage, device) => (stage === 0 ? undefined : weights(stage - 1, device))
    : weights;
}
