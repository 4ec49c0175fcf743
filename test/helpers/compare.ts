import assert from "node:assert/strict";
import type { ort } from "../../src/onnx/ort.js";

/** Max |a - b| over two float tensors, and max |b|. */
export function maxDiff(a: ort.Tensor, b: ort.Tensor): { diff: number; scale: number } {
  assert.deepEqual(a.dims, b.dims, "shapes differ");
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return { diff, scale };
}

/** Asserts every output matches: max abs difference <= 1e-5 * max |expected| (exact for non-float outputs). */
export function assertOutputsClose(
  actual: Record<string, ort.Tensor>,
  expected: Record<string, ort.Tensor>,
  label: string,
): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${label}: output names`);
  for (const name of Object.keys(expected)) {
    const e = expected[name];
    const a = actual[name];
    if (e.type !== "float32") {
      assert.deepEqual(
        Array.from(a.data as ArrayLike<unknown>),
        Array.from(e.data as ArrayLike<unknown>),
        `${label}: ${name}`,
      );
      continue;
    }
    const { diff, scale } = maxDiff(a, e);
    assert.ok(
      diff <= 1e-5 * scale + 1e-30,
      `${label}: output '${name}' differs by ${diff} (max |out| ${scale})`,
    );
  }
}
