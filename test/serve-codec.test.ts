import assert from "node:assert/strict";
import { test } from "node:test";
import { ArgumentError } from "../src/errors.js";
import { ort } from "../src/onnx/ort.js";
import { decodeInferRequest, encodeInferResponse, type ModelSignature } from "../src/serve/codec.js";

const model: ModelSignature = {
  inputs: [
    { name: "x", dtype: "float32", shape: [-1, 2] },
    { name: "ids", dtype: "int64", shape: [3] },
    { name: "mask", dtype: "bool", shape: [2] },
  ],
  outputs: [
    { name: "y", dtype: "float32", shape: [-1, 2] },
    { name: "h", dtype: "float16", shape: [2] },
  ],
};
const ok = {
  x: {
    name: "x",
    shape: [2, 2],
    datatype: "FP32",
    data: [
      [1, 2],
      [3, 4],
    ],
  },
  ids: { name: "ids", shape: [3], datatype: "INT64", data: [7, -1, 9007199254740991] },
  mask: { name: "mask", shape: [2], datatype: "BOOL", data: [true, false] },
};
const json = (o: unknown) => Buffer.from(JSON.stringify(o));

/** A binary body: the JSON header, then each buffer in order. */
function binary(head: unknown, ...data: Uint8Array[]): [Buffer, number] {
  const h = json(head);
  return [Buffer.concat([h, ...data]), h.byteLength];
}

test("JSON tensors decode to typed onnxruntime tensors: nested data, int64, bool, requested outputs", () => {
  const d = decodeInferRequest(
    json({
      id: "a",
      parameters: { timeout: 2500 },
      inputs: [ok.x, ok.ids, ok.mask],
      outputs: [{ name: "y", parameters: { binary_data: true } }],
    }),
    undefined,
    model,
  );
  assert.equal(d.id, "a");
  assert.equal(d.timeoutMs, 2.5);
  assert.deepEqual(Array.from(d.feeds.x.data as Float32Array), [1, 2, 3, 4]);
  assert.deepEqual(d.feeds.x.dims, [2, 2]);
  assert.deepEqual(Array.from(d.feeds.ids.data as BigInt64Array), [7n, -1n, 9007199254740991n]);
  assert.equal(d.feeds.mask.type, "bool");
  assert.deepEqual(Array.from(d.feeds.mask.data as Uint8Array), [1, 0]);
  assert.deepEqual(d.outputs, [{ name: "y", binary: true }]);
  // No outputs named: every output, binary when binary_data_output says so.
  const all = decodeInferRequest(
    json({ parameters: { binary_data_output: true }, inputs: [ok.x, ok.ids, ok.mask] }),
    undefined,
    model,
  );
  assert.deepEqual(all.outputs, [
    { name: "y", binary: true },
    { name: "h", binary: true },
  ]);
});

test("binary tensor data decodes in input order, also unaligned", () => {
  const x = new Float32Array([1.5, 2.5, 3.5, 4.5]);
  const ids = new BigInt64Array([1n, 2n, 3n]);
  const [body, hl] = binary(
    {
      inputs: [
        { ...ok.mask, data: undefined, parameters: { binary_data_size: 2 } },
        { ...ok.x, data: undefined, parameters: { binary_data_size: 16 } },
        { ...ok.ids, data: undefined, parameters: { binary_data_size: 24 } },
      ],
    },
    new Uint8Array([0, 1]),
    new Uint8Array(x.buffer),
    new Uint8Array(ids.buffer),
  );
  const d = decodeInferRequest(body, hl, model);
  assert.deepEqual(Array.from(d.feeds.mask.data as Uint8Array), [0, 1]);
  assert.deepEqual(Array.from(d.feeds.x.data as Float32Array), [1.5, 2.5, 3.5, 4.5]);
  assert.deepEqual(Array.from(d.feeds.ids.data as BigInt64Array), [1n, 2n, 3n]);
});

const bad: Array<[string, () => [Buffer, number | undefined], RegExp]> = [
  ["not JSON", () => [Buffer.from("{"), undefined], /^request body is not JSON/],
  ["not an object", () => [json([1]), undefined], /must be a JSON object/],
  ["no inputs", () => [json({}), undefined], /^inputs: expected an array/],
  [
    "unknown input",
    () => [json({ inputs: [{ ...ok.x, name: "z" }] }), undefined],
    /'z' is not an input of the model \(it takes x, ids, mask\)/,
  ],
  ["missing input", () => [json({ inputs: [ok.x, ok.ids] }), undefined], /input 'mask' is missing/],
  ["twice", () => [json({ inputs: [ok.x, ok.x] }), undefined], /'x' is given twice/],
  [
    "datatype",
    () => [json({ inputs: [{ ...ok.x, datatype: "FP64" }] }), undefined],
    /'x' has datatype "FP64", the model takes FP32/,
  ],
  [
    "rank",
    () => [json({ inputs: [{ ...ok.x, shape: [4] }] }), undefined],
    /shape \[4\], the model takes \[-1,2\]/,
  ],
  [
    "count",
    () => [json({ inputs: [{ ...ok.x, data: [1, 2, 3] }] }), undefined],
    /3 elements, shape \[2,2\] has 4/,
  ],
  [
    "a string in FP32",
    () => [json({ inputs: [{ ...ok.x, data: [1, 2, 3, "4"] }] }), undefined],
    /data\[3\]: expected a number, got "4"/,
  ],
  [
    "a fraction in INT64",
    () => [json({ inputs: [ok.x, { ...ok.ids, data: [1, 2.5, 3] }, ok.mask] }), undefined],
    /data\[1\]: expected an integer/,
  ],
  [
    "a number in BOOL",
    () => [json({ inputs: [ok.x, ok.ids, { ...ok.mask, data: [1, 0] }] }), undefined],
    /expected true or false/,
  ],
  [
    "unknown output",
    () => [json({ inputs: [ok.x, ok.ids, ok.mask], outputs: [{ name: "q" }] }), undefined],
    /'q' is not an output of the model/,
  ],
  [
    "timeout",
    () => [json({ parameters: { timeout: -1 }, inputs: [] }), undefined],
    /parameters.timeout: expected microseconds > 0/,
  ],
  [
    "header past the body",
    () => [json({ inputs: [] }), 1000],
    /Inference-Header-Content-Length 1000 is not within the body/,
  ],
  [
    "binary size vs shape",
    () =>
      binary(
        { inputs: [{ ...ok.x, data: undefined, parameters: { binary_data_size: 12 } }] },
        new Uint8Array(12),
      ),
    /binary_data_size is 12 bytes, shape \[2,2\] of FP32 takes 16/,
  ],
  [
    "binary past the end",
    () =>
      binary(
        { inputs: [{ ...ok.x, data: undefined, parameters: { binary_data_size: 16 } }] },
        new Uint8Array(8),
      ),
    /runs past the end of the body/,
  ],
  [
    "bytes left over",
    () => binary({ inputs: [ok.x, ok.ids, ok.mask] }, new Uint8Array(5)),
    /5 bytes of binary data past/,
  ],
];

test("bad requests are one-line ArgumentErrors naming the field", () => {
  for (const [what, make, re] of bad) {
    const [body, hl] = make();
    assert.throws(
      () => decodeInferRequest(body, hl, model),
      (err: unknown) => {
        assert.ok(err instanceof ArgumentError, what);
        assert.match(err.message, re, what);
        assert.ok(!err.message.includes("\n"), what);
        return true;
      },
      what,
    );
  }
});

test("responses: JSON data, binary data after the header, FP16 always binary; a client reads them back", () => {
  const outputs = {
    y: new ort.Tensor("float32", new Float32Array([0.5, -1, 2, 3]), [2, 2]),
    h: new ort.Tensor("float16", new Uint16Array([0x3c00, 0x4000]), [2]),
  };
  const enc = encodeInferResponse("m", undefined, "r7", outputs, [
    { name: "y", binary: false },
    { name: "h", binary: false },
  ]);
  const body = Buffer.concat(enc.parts);
  assert.equal(body.byteLength, enc.bytes);
  const head = JSON.parse(body.subarray(0, enc.headerLength).toString());
  assert.equal(head.id, "r7");
  assert.deepEqual(head.outputs[0], { name: "y", datatype: "FP32", shape: [2, 2], data: [0.5, -1, 2, 3] });
  assert.deepEqual(head.outputs[1], {
    name: "h",
    datatype: "FP16",
    shape: [2],
    parameters: { binary_data_size: 4 },
  });
  assert.deepEqual(
    Array.from(new Uint16Array(new Uint8Array(body.subarray(enc.headerLength!)).buffer)),
    [0x3c00, 0x4000],
  );
  // Binary y round-trips as a request input of the same shape.
  const bin = encodeInferResponse("m", undefined, undefined, outputs, [{ name: "y", binary: true }]);
  const b = Buffer.concat(bin.parts);
  const h2 = JSON.parse(b.subarray(0, bin.headerLength).toString());
  const [req, hl] = binary(
    {
      inputs: [
        {
          name: "x",
          shape: h2.outputs[0].shape,
          datatype: h2.outputs[0].datatype,
          parameters: h2.outputs[0].parameters,
        },
        ok.ids,
        ok.mask,
      ],
    },
    b.subarray(bin.headerLength),
  );
  assert.deepEqual(
    Array.from(decodeInferRequest(req, hl, model).feeds.x.data as Float32Array),
    [0.5, -1, 2, 3],
  );
});
