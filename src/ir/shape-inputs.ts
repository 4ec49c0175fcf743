import type { ValueInfoProto } from "onnx-buf";
import { ArgumentError, ModelError } from "../errors.js";
import { dtypeFromOnnx } from "../onnx/dtype.js";
import type { Graph, TensorType } from "./graph.js";

/** A declared input dimension: fixed, named (dim_param) or unnamed-unknown (null). */
type DeclaredDim = number | string | null;

/** The declared dims of a ValueInfo, or undefined when it has no shape at all (unknown rank). */
function declaredDims(vi: ValueInfoProto): DeclaredDim[] | undefined {
  const tt = vi.type?.value.case === "tensorType" ? vi.type.value.value : undefined;
  if (!tt?.shape) return undefined;
  return tt.shape.dim.map((d) => {
    if (d.value.case === "dimValue") return Number(d.value.value);
    if (d.value.case === "dimParam" && d.value.value !== "") return d.value.value;
    return null;
  });
}

const show = (dims: readonly DeclaredDim[]) => `[${dims.map((d) => d ?? "?").join(", ")}]`;
const flag = (dims: readonly number[]) => dims.join("x");

/** An example shape for the error message: batch 1, 224 for other unknown image dims, 128 otherwise. */
function example(dims: readonly DeclaredDim[]): number[] {
  return dims.map((d, i) => (typeof d === "number" ? d : i === 0 ? 1 : dims.length === 4 ? 224 : 128));
}

/**
 * Types of the graph's inputs with every dimension fixed: symbolic dims come from `inputShapes`
 * (name -> dims); a lone symbolic batch dim (axis 0) defaults to 1. Mistakes are ArgumentErrors naming
 * the input; an input that is not a tensor of a supported type is a ModelError.
 */
export function resolveInputTypes(
  graph: Graph,
  inputShapes: Record<string, number[]> = {},
): Map<string, TensorType> {
  const infos = new Map((graph.model.graph?.input ?? []).map((vi) => [vi.name, vi]));
  const names = graph.inputs.map((v) => v.name);
  for (const name of Object.keys(inputShapes)) {
    if (!names.includes(name))
      throw new ArgumentError(
        `unknown input '${name}' in --input-shape (model inputs: ${names.join(", ")})`,
        {
          tensor: name,
        },
      );
  }
  const out = new Map<string, TensorType>();
  for (const name of names) {
    const vi = infos.get(name)!;
    const tt = vi.type?.value.case === "tensorType" ? vi.type.value.value : undefined;
    const dtype = tt ? dtypeFromOnnx(tt.elemType) : undefined;
    if (!dtype) {
      throw new ModelError(
        "SHAPE_INFERENCE",
        `${graph.source}: input '${name}' is not a tensor of a supported element type`,
        { file: graph.source, tensor: name },
      );
    }
    const dims = declaredDims(vi);
    const given = inputShapes[name];
    if (given !== undefined) {
      if (!Array.isArray(given) || given.some((d) => !Number.isInteger(d) || d < 0))
        throw new ArgumentError(
          `--input-shape for '${name}' must be non-negative integers, got ${String(given)}`,
          {
            tensor: name,
          },
        );
      if (dims && dims.length !== given.length)
        throw new ArgumentError(
          `input '${name}' has rank ${dims.length} ${show(dims)}, but --input-shape gives ${flag(given)} (rank ${given.length})`,
          { tensor: name },
        );
      dims?.forEach((d, i) => {
        if (typeof d === "number" && d !== given[i])
          throw new ArgumentError(
            `input '${name}' has dimension ${i} fixed to ${d} ${show(dims)}, but --input-shape gives ${flag(given)}`,
            { tensor: name },
          );
      });
      out.set(name, { dtype, shape: [...given] });
      continue;
    }
    if (!dims)
      throw new ArgumentError(
        `input '${name}' has no declared shape: give its shape with --input-shape ${name}=1x3x224x224`,
        { tensor: name },
      );
    const symbolic = dims.flatMap((d, i) => (typeof d === "number" ? [] : [i]));
    if (symbolic.length === 0 || (symbolic.length === 1 && symbolic[0] === 0)) {
      out.set(name, { dtype, shape: dims.map((d) => (typeof d === "number" ? d : 1)) });
      continue;
    }
    throw new ArgumentError(
      `input '${name}' has symbolic dimensions ${show(dims)}: give its shape with --input-shape ${name}=${flag(example(dims))}`,
      { tensor: name },
    );
  }
  return out;
}
