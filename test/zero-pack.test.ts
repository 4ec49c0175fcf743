import assert from "node:assert/strict";
import { test } from "node:test";
import { RuntimeFault } from "../src/errors.js";
import { ENCODINGS, parseEncodingName, wireBytes } from "../src/onnx/encoding.js";
import { bitmapBytes, countNonZero, packedBytes, zeroPack, zeroUnpack } from "../src/onnx/zero-pack.js";
import {
  decodeFrame,
  encodeFrame,
  frameSize,
  packTensorFrame,
  type TensorFrame,
} from "../src/runtime/transport/frame.js";

/** Seeded bytes: `n` elements of `width` bytes, each zero with probability `zeros`. */
function sparse(n: number, width: number, zeros: number, seed = 7): Uint8Array {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
  const x = new Uint8Array(n * width);
  for (let i = 0; i < n; i++) {
    if (rnd() < zeros) continue;
    // One random byte of the element non-zero at least (the others may be zero).
    const at = Math.floor(rnd() * width);
    for (let b = 0; b < width; b++)
      x[i * width + b] = b === at ? 1 + Math.floor(rnd() * 255) : Math.floor(rnd() * 256);
  }
  return x;
}

const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

test("zero packing round trips exactly at every width and odd length, and is as small as its count says", () => {
  for (const width of [1, 2, 4, 8])
    for (const n of [9, 63, 64, 65, 127, 1000, 4097])
      for (const zeros of [0.5, 0.9, 1]) {
        const x = sparse(n, width, zeros, n + width);
        const p = zeroPack(x, width);
        const size = packedBytes(n, width, countNonZero(x, width));
        // Packed exactly when that is smaller.
        assert.equal(p === undefined, size >= n * width, `width ${width}, ${n} elements, ${zeros} zeros`);
        if (!p) continue;
        assert.equal(p.byteLength, size);
        assert.ok(equal(zeroUnpack(p, n, width), x), `width ${width}, n ${n}, zeros ${zeros}`);
      }
  // All zeros: the bitmap alone.
  assert.equal(zeroPack(new Uint8Array(4 * 1000), 4)?.byteLength, bitmapBytes(1000));
});

test("zero packing keeps -0, NaN payloads and denormals bit for bit; a dense tensor is not packed", () => {
  const f = new Float32Array(256);
  f[3] = -0;
  f[10] = Number.NaN;
  f[11] = 1e-45;
  f[200] = -3.5;
  const bytes = new Uint8Array(f.buffer);
  const p = zeroPack(bytes, 4)!;
  const back = new Float32Array(zeroUnpack(p, 256, 4).buffer);
  assert.ok(Object.is(back[3], -0));
  assert.ok(Number.isNaN(back[10]));
  assert.equal(back[11], f[11]);
  assert.equal(back[200], -3.5);
  assert.equal(countNonZero(bytes, 4), 4);
  // Dense (no zeros), or too few zeros to pay for the bitmap: travels as it is.
  assert.equal(zeroPack(sparse(1000, 4, 0), 4), undefined);
  assert.equal(zeroPack(sparse(1000, 1, 0.05), 1), undefined);
  // Tiny tensors never pay for a bitmap of 8 bytes.
  assert.equal(zeroPack(new Uint8Array(8), 4), undefined);
});

test("zero packing reads unaligned views without changing them", () => {
  const x = sparse(333, 4, 0.6);
  const buf = new Uint8Array(x.byteLength + 3);
  buf.set(x, 3);
  const view = buf.subarray(3);
  const p = zeroPack(view, 4)!;
  assert.ok(equal(zeroUnpack(p.slice(), 333, 4), x));
  const shifted = new Uint8Array(p.byteLength + 1);
  shifted.set(p, 1);
  assert.ok(equal(zeroUnpack(shifted.subarray(1), 333, 4), x));
  assert.ok(equal(view, x));
});

test("a malformed packed tensor is refused, saying what disagrees", () => {
  const x = sparse(100, 4, 0.7);
  const p = zeroPack(x, 4)!;
  assert.throws(() => zeroUnpack(p.subarray(0, p.byteLength - 4), 100, 4), /marks \d+ non-zero elements/);
  assert.throws(() => zeroUnpack(p.subarray(0, 8), 100, 4), /shorter than the bitmap/);
  const past = p.slice();
  past[12] |= 0x80; // element 103 of a 100-element tensor
  assert.throws(() => zeroUnpack(past, 100, 4), /past the tensor's end/);
  assert.throws(() => zeroPack(new Uint8Array(6), 4), /whole number/);
});

test("packed tensor frames: smaller on the wire, decoded to the same tensor, bounded when they unpack", () => {
  const n = 64 * 32;
  const data = sparse(n, 4, 0.6);
  const frame: TensorFrame = {
    type: "tensor",
    requestId: 9,
    epoch: 3,
    name: "relu_out",
    dtype: "float32",
    shape: [1, 64, 32],
    data,
    path: Uint8Array.of(0, 1),
  };
  const packed = packTensorFrame(frame);
  assert.ok(packed.packed, "a sparse tensor is packed");
  const parts = encodeFrame(packed);
  const dense = frameSize(encodeFrame(frame));
  assert.ok(frameSize(parts) < 0.6 * dense, `${frameSize(parts)} of ${dense} bytes`);
  const wire = Buffer.concat(parts);
  const back = decodeFrame(wire);
  assert.equal(back.type, "tensor");
  if (back.type !== "tensor") return;
  assert.ok(equal(back.data, data));
  assert.deepEqual(back.shape, [1, 64, 32]);
  assert.equal(back.name, "relu_out");
  assert.equal(back.epoch, 3);
  assert.deepEqual(Array.from(back.path ?? []), [0, 1]);
  assert.equal(back.packed, undefined);
  // A dense tensor stays an ordinary frame.
  assert.equal(packTensorFrame({ ...frame, data: sparse(n, 4, 0) }).packed, undefined);
  // A packed frame may not unpack past the receiver's limit (no decompression bombs)...
  assert.throws(
    () => decodeFrame(wire, n * 4 - 1),
    (e: unknown) => e instanceof RuntimeFault && /unpacks to 8192 bytes, over the limit/.test(e.message),
  );
  // ...and one whose values disagree with its bitmap is malformed.
  assert.throws(
    () => decodeFrame(wire.subarray(0, wire.byteLength - 4)),
    (e: unknown) => e instanceof RuntimeFault && /malformed frame: packed tensor 'relu_out'/.test(e.message),
  );
});

test("every encoding has a zero-packed twin; its wire size follows the share of non-zero elements", () => {
  for (const e of ["float32", "float16", "int8", "int8-channel"] as const)
    assert.ok(ENCODINGS.includes(`${e}+sparse`));
  assert.equal(parseEncodingName("int8+sparse"), "int8+sparse");
  assert.throws(
    () => parseEncodingName("sparse", "--encodings"),
    /--encodings: unknown encoding 'sparse' \(known: .*float32\+sparse/,
  );
  assert.equal(wireBytes("float32+sparse", 1024, 0.25), bitmapBytes(1024) + 256 * 4);
  assert.equal(wireBytes("int8+sparse", 1024, 0.5), bitmapBytes(1024) + 512);
  // Never above dense (the packer sends dense then); unknown zeros: priced dense.
  assert.equal(wireBytes("float16+sparse", 1024, 1), 2048);
  assert.equal(wireBytes("float32+sparse", 1024), 4096);
  assert.equal(wireBytes("int8", 1024, 0.1), 1024);
});
