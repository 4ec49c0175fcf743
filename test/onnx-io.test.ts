import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, NodeProtoSchema } from "onnx-buf";
import { ModelError } from "../src/errors.js";
import { attribute, GraphBuilder } from "../src/onnx/builder.js";
import { decodeModel, encodeModel, loadModel, saveModel } from "../src/onnx/model-io.js";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { tensorDType, tensorToNumbers } from "../src/onnx/tensor.js";
import { OCR_MODELS } from "./helpers/models.js";

/** A model touching every part of the format cleave must keep: all dtypes, Constant, value_info, If subgraphs. */
function richModel() {
  const b = new GraphBuilder("rich", { seed: 7 });
  const x = b.input("x", "float32", ["batch", 4]);
  const w = b.weight("w", [4, 4]);
  b.constant("h16", "float16", [2], Uint16Array.from([0x3c00, 0x4000]));
  b.constant("i8", "int8", [3], Int8Array.from([-1, 0, 1]));
  b.constant("u8", "uint8", [3], Uint8Array.from([0, 128, 255]));
  b.constant("i32", "int32", [2], Int32Array.from([7, -7]));
  b.constant("flag", "bool", [], Uint8Array.from([1]));
  const y = b.node("MatMul", [x, w]);
  const c = b.node("Constant", [], { value_floats: [0.5, 0.5, 0.5, 0.5] });
  const z = b.node("Add", [y, c]);
  const thenB = new GraphBuilder("then");
  thenB.output(thenB.node("Relu", [z], {}, "then_relu"), "float32");
  const elseB = new GraphBuilder("else");
  elseB.output(elseB.node("Sigmoid", [z], {}, "else_sig"), "float32");
  const out = b.node("If", ["flag"], { then_branch: thenB.toGraph(), else_branch: elseB.toGraph() });
  b.output(out, "float32", ["batch", 4]);
  const m = b.toModel();
  m.graph!.valueInfo.push(...[]);
  return m;
}

test("decode, encode, decode gives the same model and the same bytes", () => {
  const m = richModel();
  const bytes = encodeModel(m);
  const m2 = decodeModel(bytes);
  assert.ok(equals(ModelProtoSchema, m, m2));
  assert.deepEqual(encodeModel(m2), bytes);
  const types = Object.fromEntries(m2.graph!.initializer.map((t) => [t.name, tensorDType(t)]));
  assert.deepEqual(types, {
    w: "float32",
    h16: "float16",
    i8: "int8",
    u8: "uint8",
    i32: "int32",
    flag: "bool",
  });
  assert.deepEqual(tensorToNumbers(m2.graph!.initializer.find((t) => t.name === "i8")!), [-1, 0, 1]);
});

test("chunked encoding equals the schema's own encoding, byte for byte in size, and decodes the same", () => {
  const m = richModel();
  const ours = encodeModel(m);
  const reference = toBinary(ModelProtoSchema, m);
  assert.equal(ours.length, reference.length);
  assert.ok(equals(ModelProtoSchema, decodeModel(ours), decodeModel(reference)));
});

test("weights decode as zero-copy views into the file buffer", () => {
  const bytes = encodeModel(richModel());
  const m = decodeModel(bytes);
  const w = m.graph!.initializer.find((t) => t.name === "w")!;
  assert.equal(w.rawData.buffer, bytes.buffer);
});

test("a round-tripped model gives the same outputs in onnxruntime", async () => {
  const m = richModel();
  const feeds = { x: randomTensor("float32", [2, 4], 3) };
  const a = await (await createSession(m)).run(feeds);
  const b = await (await createSession(decodeModel(encodeModel(m)))).run(feeds);
  assert.deepEqual(
    Array.from(a[m.graph!.output[0].name].data as Float32Array),
    Array.from(b[m.graph!.output[0].name].data as Float32Array),
  );
});

test("external data: large tensors go to a sidecar file and load back identically", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-ext-"));
  try {
    const m = richModel();
    const path = join(dir, "m.onnx");
    saveModel(m, path, { externalDataThreshold: 32 });
    assert.ok(existsSync(`${path}.data`));
    assert.ok(readFileSync(path).length < encodeModel(m).length);
    const back = loadModel(path);
    assert.ok(equals(ModelProtoSchema, m, back), "in-memory model unchanged and reloaded equal");
    const feeds = { x: randomTensor("float32", [1, 4], 5) };
    const out = m.graph!.output[0].name;
    const a = await (await createSession(m)).run(feeds);
    const s = await ort.InferenceSession.create(path);
    const b = await s.run(feeds);
    assert.deepEqual(Array.from(a[out].data as Float32Array), Array.from(b[out].data as Float32Array));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("external data outside the model's folder is refused, as onnxruntime does", () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-ext-"));
  try {
    const m = richModel();
    const inner = join(dir, "models");
    const path = join(inner, "m.onnx");
    mkdirSync(inner);
    saveModel(m, path, { externalDataThreshold: 32 });
    writeFileSync(join(dir, "secret.data"), readFileSync(`${path}.data`));
    const bytes = readFileSync(path);
    for (const [location, offset] of [
      ["../secret.data", "0"],
      [join(dir, "secret.data"), "0"],
      ["sub/../../secret.data", "0"],
      ["m.onnx.data", "-4"],
      ["m.onnx.data", "abc"],
    ]) {
      // The file as written, with every external entry pointed elsewhere (decoded without resolving it).
      const raw = fromBinary(ModelProtoSchema, bytes);
      for (const t of raw.graph!.initializer)
        for (const e of t.externalData) {
          if (e.key === "location") e.value = location;
          if (e.key === "offset") e.value = offset;
        }
      const swapped = toBinary(ModelProtoSchema, raw);
      assert.throws(
        () => decodeModel(swapped, { baseDir: inner, source: "evil.onnx" }),
        (e: unknown) =>
          e instanceof ModelError &&
          e.message.startsWith("evil.onnx: tensor '") &&
          /outside the model's folder|not a byte count/.test(e.message),
        location,
      );
    }
    // The model's own sidecar still loads.
    assert.doesNotThrow(() => loadModel(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the real PP-OCR models round-trip exactly", () => {
  for (const path of Object.values(OCR_MODELS)) {
    const bytes = readFileSync(path);
    const m = decodeModel(bytes);
    const again = encodeModel(m);
    assert.ok(equals(ModelProtoSchema, m, decodeModel(again)), path);
  }
});

test("bad files give one clear ModelError naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-bad-"));
  try {
    const text = join(dir, "notes.onnx");
    writeFileSync(text, "this is not a model\n");
    const truncated = join(dir, "trunc.onnx");
    const full = encodeModel(richModel());
    writeFileSync(truncated, full.subarray(0, Math.floor(full.length * 0.6)));
    const cases: Array<[string, RegExp]> = [
      [join(dir, "missing.onnx"), /missing\.onnx: no such file/],
      [text, /notes\.onnx: not a valid ONNX model/],
      [truncated, /trunc\.onnx: not a valid ONNX model/],
      [dir, /cannot read/],
    ];
    for (const [p, re] of cases) {
      assert.throws(
        () => loadModel(p),
        (e: unknown) => e instanceof ModelError && re.test(e.message) && !e.message.includes("\n"),
        p,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("attribute() picks the ONNX attribute type from the value", () => {
  assert.equal(attribute("a", 3).i, 3n);
  assert.equal(attribute("a", 0.25).f, 0.25);
  assert.equal(attribute("a", { float: 1 }).f, 1);
  assert.deepEqual(attribute("a", [1, 2]).ints, [1n, 2n]);
  assert.deepEqual(attribute("a", [0.5, 2]).floats, [0.5, 2]);
  const n = create(NodeProtoSchema, { attribute: [attribute("mode", "nearest")] });
  assert.equal(new TextDecoder().decode(n.attribute[0].s), "nearest");
});
