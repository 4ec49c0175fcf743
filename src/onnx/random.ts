import type { DType } from "./dtype.js";
import { seededRandom } from "./prng.js";
import type { TypedArray } from "./tensor.js";

export { numel } from "./tensor.js";

/**
 * Seeded pseudo-random data for a tensor of `n` elements: floats uniform in [-1, 1), integers in [0, 4)
 * (small, so they are valid indices for most gathers), booleans 0/1. Float16 is given as raw bits.
 */
export function seededRandomTensorData(dtype: DType, n: number, seed = 1): TypedArray | string[] {
  const r = seededRandom(seed);
  switch (dtype) {
    case "float32":
      return Float32Array.from({ length: n }, () => r() * 2 - 1);
    case "float64":
      return Float64Array.from({ length: n }, () => r() * 2 - 1);
    case "float16":
    case "bfloat16":
      // 0x3c00 is 1.0 in float16; leave values small and finite.
      return Uint16Array.from({ length: n }, () => 0x3800 + Math.floor(r() * 0x400));
    case "int8":
      return Int8Array.from({ length: n }, () => Math.floor(r() * 4));
    case "uint8":
      return Uint8Array.from({ length: n }, () => Math.floor(r() * 4));
    case "bool":
      return Uint8Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1));
    case "int16":
      return Int16Array.from({ length: n }, () => Math.floor(r() * 4));
    case "uint16":
      return Uint16Array.from({ length: n }, () => Math.floor(r() * 4));
    case "int32":
      return Int32Array.from({ length: n }, () => Math.floor(r() * 4));
    case "uint32":
      return Uint32Array.from({ length: n }, () => Math.floor(r() * 4));
    case "int64":
      return BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 4)));
    case "uint64":
      return BigUint64Array.from({ length: n }, () => BigInt(Math.floor(r() * 4)));
    case "string":
      return Array.from({ length: n }, () => "");
  }
}
