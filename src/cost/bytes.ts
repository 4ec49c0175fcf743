import type { TensorType } from "../ir/graph.js";
import { dtypeSize } from "../onnx/dtype.js";
import { numel } from "../onnx/tensor.js";

/** Bytes of a tensor of a type (0 when the type is unknown). */
export function typeBytes(t: TensorType | undefined): number {
  return t ? numel(t.shape) * dtypeSize(t.dtype) : 0;
}
