import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { main } from "../src/cli/main.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { createSession, ort } from "../src/onnx/ort.js";
import { parsePostprocess, parsePreprocess } from "../src/onnx/preprocess.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";

// An encoded image through `serve --preprocess`: the preprocessing runs as ONNX layers in the pipeline, and
// the answer equals decoding and normalising the image by hand and running the original model.

const H = 8;
const W = 8;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
let dir: string;
let serve: ChildProcess;
let base: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cleave-image-test-"));
  const g = new GraphBuilder("tinycls");
  g.input("pixels", "float32", [1, 3, H, W]);
  g.node("Flatten", ["pixels"], { axis: 1 }, "flat");
  g.node("MatMul", ["flat", g.weight("w", [3 * H * W, 4])], {}, "logits");
  g.output("logits", "float32", [1, 4]);
  writeFileSync(join(dir, "tinycls.onnx"), encodeModel(g.toModel()));
  const [cmd, ...rest] = cliCommand();
  serve = spawn(cmd, [
    ...rest,
    "serve",
    join(dir, "tinycls.onnx"),
    "--stages",
    "2",
    "--listen",
    "127.0.0.1:0",
    "--preprocess",
    `image:${H}x${W},mean=${MEAN.join("/")},std=${STD.join("/")},layout=nchw`,
    "--postprocess",
    "topk=2",
  ]);
  const lines = createInterface({ input: serve.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  assert.ok(!first.done, "cleave serve ended its output");
  base = /on (http:\/\/\S+)\/v2\/models\/tinycls$/.exec(first.value)![1];
});

after(async () => {
  if (serve.exitCode === null) {
    serve.kill("SIGTERM");
    await once(serve, "exit");
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A 40x30 RGB picture with some structure, encoded by sharp. */
async function picture(format: "jpeg" | "png"): Promise<Buffer> {
  const px = Buffer.alloc(40 * 30 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37 + Math.floor(i / 120) * 11) % 256;
  const img = sharp(px, { raw: { width: 40, height: 30, channels: 3 } });
  return format === "jpeg" ? img.jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}

/** Decodes and normalises by hand, then runs the original model in onnxruntime. */
async function byHand(encoded: Buffer): Promise<Float32Array> {
  const rgb = await sharp(encoded)
    .toColourspace("srgb")
    .removeAlpha()
    .resize(W, H, { fit: "fill" })
    .raw()
    .toBuffer();
  const x = new Float32Array(3 * H * W);
  for (let y = 0; y < H; y++)
    for (let xx = 0; xx < W; xx++)
      for (let c = 0; c < 3; c++)
        x[c * H * W + y * W + xx] = (rgb[(y * W + xx) * 3 + c] / 255 - MEAN[c]) / STD[c];
  const s = await createSession(readFileSync(join(dir, "tinycls.onnx")));
  try {
    return (await s.run({ pixels: new ort.Tensor("float32", x, [1, 3, H, W]) })).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

function imageRequest(encoded: Buffer) {
  const elem = Buffer.alloc(4);
  elem.writeUInt32LE(encoded.byteLength);
  const head = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: "image",
          shape: [1],
          datatype: "BYTES",
          parameters: { binary_data_size: encoded.byteLength + 4 },
        },
      ],
    }),
  );
  return {
    method: "POST",
    headers: {
      "Inference-Header-Content-Length": String(head.byteLength),
      "Content-Type": "application/octet-stream",
    },
    body: Buffer.concat([head, elem, encoded]),
  };
}

test("the model's metadata takes one encoded image as BYTES and gives the top 2", async () => {
  const meta = await (await fetch(`${base}/v2/models/tinycls`)).json();
  assert.deepEqual(meta.inputs, [{ name: "image", datatype: "BYTES", shape: [1] }]);
  assert.deepEqual(meta.outputs, [
    { name: "logits_topk_values", datatype: "FP32", shape: [1, 2] },
    { name: "logits_topk_indices", datatype: "INT64", shape: [1, 2] },
  ]);
});

test("a JPEG and a PNG through --preprocess and --postprocess equal decoding, normalising and ranking by hand", async () => {
  for (const format of ["jpeg", "png"] as const) {
    const img = await picture(format);
    const r = await fetch(`${base}/v2/models/tinycls/infer`, imageRequest(img));
    assert.equal(r.status, 200, await r.clone().text());
    const [values, indices] = (await r.json()).outputs as Array<{ data: number[] }>;
    const logits = await byHand(img);
    const order = [0, 1, 2, 3].sort((x, y) => logits[y] - logits[x]);
    assert.deepEqual(indices.data, order.slice(0, 2), `${format}: logits ${Array.from(logits)}`);
    for (let i = 0; i < 2; i++) {
      const want = logits[order[i]];
      assert.ok(
        Math.abs(values.data[i] - want) <= 1e-4 * (1 + Math.abs(want)),
        `${format} ${i}: ${values.data[i]} vs ${want}`,
      );
    }
  }
});

test("bytes that are not an image get 400, and the server keeps serving", async () => {
  const r = await fetch(`${base}/v2/models/tinycls/infer`, imageRequest(Buffer.from("not an image at all")));
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /input 'image': not an image sharp can decode/);
  assert.equal(
    (await fetch(`${base}/v2/models/tinycls/infer`, imageRequest(await picture("png")))).status,
    200,
  );
});

test("--preprocess and --postprocess are parsed strictly and checked against the model", async () => {
  assert.deepEqual(parsePreprocess("image:4x6,layout=nhwc"), {
    height: 4,
    width: 6,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    layout: "nhwc",
  });
  for (const [bad, re] of [
    ["image:4", /is not an image preprocessing/],
    ["image:4x4,std=1/0/1", /std=1\/0\/1 is not three numbers/],
    ["image:4x4,layout=chw", /layout=chw is neither/],
    ["image:4x4,gamma=2", /unknown key 'gamma'/],
  ] as const)
    assert.throws(() => parsePreprocess(bad), re);
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false };
  writeFileSync(join(dir, "wrong.onnx"), readFileSync(join(dir, "tinycls.onnx")));
  assert.equal(
    await main(["serve", join(dir, "wrong.onnx"), "--stages", "1", "--preprocess", "image:9x9"], io),
    2,
  );
  assert.match(err[0], /input 'pixels' is not float32 \[1,3,9,9\] \(it is \[1,3,8,8\]\)/);
  assert.equal(
    await main(["serve", join(dir, "wrong.onnx"), "--stages", "1", "--postprocess", "topk=5"], io),
    2,
  );
  assert.match(
    err[1],
    /output 'logits' is not float32 with at least 5 values on its last axis \(it is \[1,4\]\)/,
  );
  assert.throws(() => parsePostprocess("top=3"), /expected topk=K/);
});
