import type { GraphBuilder } from "../../src/onnx/builder.js";
import { makeTensor } from "../../src/onnx/tensor.js";

/**
 * A float32 weight of `shape` built at run time from constants, the way some exporters write them:
 * Range (int64) -> Cast -> Reshape -> Mul -> Sin -> Mul, so it holds distinct pseudo-random values in
 * [-bound, bound]. Returns the name of the built tensor (a node output, not an initializer).
 */
export function runtimeWeight(b: GraphBuilder, shape: readonly number[], phase: number): string {
  const n = shape.reduce((a, x) => a * x, 1);
  const fanIn = shape.length > 1 ? n / shape[0] : n;
  const r = b.node("Range", [b.ints("r0", [0], []), b.ints("rn", [n], []), b.ints("r1", [1], [])]);
  const f = b.node("Cast", [r], { to: 1 });
  const grid = b.node("Reshape", [f, b.ints("shape", [...shape])]);
  const angle = b.node("Mul", [grid, b.constant("freq", "float32", [], Float32Array.of(0.7 + phase * 0.13))]);
  const bound = Math.sqrt(6 / Math.max(1, fanIn));
  return b.node("Mul", [b.node("Sin", [angle]), b.constant("bound", "float32", [], Float32Array.of(bound))]);
}

/** A per-channel tensor [1, c, 1, 1] of one value built by ConstantOfShape -> Tile -> Unsqueeze -> Expand. */
export function runtimeChannelConst(b: GraphBuilder, c: number, value: number): string {
  const one = b.node("ConstantOfShape", [b.ints("one", [1])], {
    value: makeTensor("value", "float32", [1], Float32Array.of(value)),
  });
  const tiled = b.node("Tile", [one, b.ints("reps", [c])]);
  const col = b.node("Unsqueeze", [tiled, b.ints("axes", [1, 2])]); // [c, 1, 1]
  return b.node("Expand", [col, b.ints("to", [1, c, 1, 1])]);
}
