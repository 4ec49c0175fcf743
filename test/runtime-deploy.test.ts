import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TensorProto_DataType as DT, TensorProtoSchema } from "onnx-buf";
import { readManifest } from "../src/export/manifest-io.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { splitModel } from "../src/export/split.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { PROTOBUF_LIMIT_BYTES } from "../src/onnx/model-io.js";
import { createSession, maxSessionThreads, ort, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { connectWorker } from "../src/runtime/transport/handshake.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";
import { Worker } from "../src/runtime/worker/worker.js";
import { assertOutputsClose } from "./helpers/compare.js";
import { type FixtureSpec, writeFixture } from "./runtime-fixture.js";

let cluster: LocalCluster;
let model: AnalyzedModel;
const dirs: string[] = [];
const inProcess: Worker[] = [];

/**
 * x[1,256] -> MatMul (1 MiB weight) -> Relu -> Add a Constant node's 4 KiB tensor -> MatMul (256 KiB) -> y.
 * About 1.3 MiB of weights, one of them in a Constant node (external data must cover those too).
 */
function mlp() {
  const b = new GraphBuilder("mlp", { seed: 5 });
  const x = b.input("x", "float32", [1, 256]);
  const h = b.node("Relu", [b.node("MatMul", [x, b.weight("w1", [256, 1024])], {}, "fc1")], {}, "act");
  const bias = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i) / 10);
  const value = create(TensorProtoSchema, {
    name: "bias_value",
    dataType: DT.FLOAT,
    dims: [1n, 1024n],
    rawData: new Uint8Array(bias.buffer),
  });
  const c = b.node("Constant", [], { value }, "bias");
  const y = b.node("MatMul", [b.node("Add", [h, c], {}, "biased"), b.weight("w2", [1024, 64])], {}, "fc2");
  b.output(y, "float32", [1, 64]);
  return b.toModel();
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cleave-deploy-"));
  dirs.push(d);
  return d;
}

async function startWorker(opts: ConstructorParameters<typeof Worker>[0]): Promise<string> {
  const w = new Worker(opts);
  inProcess.push(w);
  const a = await w.start();
  return `${a.host}:${a.port}`;
}

before(async () => {
  model = await analyzeModel(mlp());
  cluster = await startLocalWorkers([{ name: "d0" }, { name: "d1" }]);
});

after(async () => {
  await cluster.stop();
  for (const w of inProcess) await w.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("a stage model many times a worker's frame limit arrives in chunks and runs exactly", async () => {
  const dir = tempDir();
  const { manifest } = splitModel(model, { stages: 2 }, dir, {
    modelPath: "mlp.onnx",
    devices: ["small", "small"],
  });
  const sizes = manifest.stages.map((s) => readFileSync(join(dir, s.file)).byteLength);
  assert.ok(sizes[0] > 1024 * 1024, `stage 0 holds the 1 MiB weight (${sizes[0]} bytes)`);
  assert.deepEqual(
    manifest.stages.map((s) => s.fileBytes),
    sizes,
  );
  // A 16 KiB frame limit: the worker announces it, and deploy sends chunks of 16 KiB less the header room.
  const limit = 16 * 1024;
  const small = await startWorker({ name: "small", maxFrameBytes: limit });
  const p = await deploy(dir, [{ name: "small", endpoint: small }]);
  try {
    const chunk = limit - 1024;
    assert.deepEqual(
      p.stageLoads.map((l) => [l.stage, l.worker, l.bytes, l.chunks]),
      sizes.map((n, i) => [i, "small", n, Math.ceil(n / chunk)]),
    );
    for (const l of p.stageLoads) assert.ok(l.loadMs >= l.receiveMs && l.deployMs > 0);
    const whole = await createSession(model.graph.model);
    for (let seed = 1; seed <= 3; seed++) {
      const feeds = { x: randomTensor("float32", [1, 256], seed) };
      assertOutputsClose(await p.infer(feeds), await whole.run(feeds), `request ${seed}`);
    }
  } finally {
    await p.close();
  }
});

test("stages over the protobuf limit are written with external data that deploys and runs exactly", async () => {
  const dir = tempDir();
  // The limit lowered to 0 bytes makes every stage "too large"; the real default is PROTOBUF_LIMIT_BYTES.
  const { manifest } = splitModel(model, { stages: 2 }, dir, { modelPath: "mlp.onnx", externalDataAbove: 0 });
  for (const s of manifest.stages) {
    assert.ok(s.data, `stage ${s.index} has external data`);
    assert.equal(s.data.file, `${s.file}.data`);
    assert.equal(readFileSync(join(dir, s.data.file)).byteLength, s.data.bytes);
    // The weights left the stage file: what remains is the graph, far smaller than its data.
    assert.ok(s.fileBytes! < s.data.bytes, `stage ${s.index}: ${s.fileBytes} vs ${s.data.bytes}`);
  }
  // The Constant node's 4 KiB tensor went to external data as well (stage 1 holds it).
  assert.ok(manifest.stages[1].data!.bytes >= 4096 + 1024 * 64 * 4);
  const whole = await createSession(model.graph.model);
  const feeds = { x: randomTensor("float32", [1, 256], 7) };
  const want = await whole.run(feeds);
  const seq = await SequentialRunner.open(dir);
  assertOutputsClose(await seq.run(feeds), want, "sequential");
  await seq.close();
  // Without external data the same split writes no .data files.
  const inline = tempDir();
  const plain = splitModel(model, { stages: 2 }, inline, { modelPath: "mlp.onnx" });
  for (const s of plain.manifest.stages) {
    assert.equal(s.data, undefined);
    assert.equal(existsSync(join(inline, `${s.file}.data`)), false);
  }
  const p = await deploy(dir, cluster.workers, { token: cluster.token, chunkBytes: 100_000 });
  try {
    assert.deepEqual(
      p.stageLoads.map((l) => l.bytes),
      manifest.stages.map((s) => s.fileBytes! + s.data!.bytes),
    );
    assertOutputsClose(await p.infer(feeds), want, "deployed");
  } finally {
    await p.close();
  }
});

test("a data file that differs from its manifest is refused by the worker after the last chunk", async () => {
  const dir = tempDir();
  const { manifest } = splitModel(model, { stages: 2 }, dir, { modelPath: "mlp.onnx", externalDataAbove: 0 });
  const data = join(dir, manifest.stages[0].data!.file);
  const bytes = readFileSync(data);
  bytes[100] ^= 0xff;
  writeFileSync(data, bytes);
  await assert.rejects(
    deploy(dir, cluster.workers, { token: cluster.token, chunkBytes: 65536 }),
    (err: Error) => {
      assert.equal(err.name, "RuntimeFault");
      assert.match(
        err.message,
        new RegExp(
          `^worker d0 at 127\\.0\\.0\\.1:\\d+: stage 0 failed to load: stage-0\\.onnx\\.data: sha256 of the ${bytes.byteLength} bytes received is [0-9a-f]{64}, the manifest says ${manifest.stages[0].data!.sha256}$`,
        ),
      );
      return true;
    },
  );
  // A missing data file is named before anything is sent.
  rmSync(data);
  assert.throws(() => readManifest(dir), {
    message: `${join(dir, "manifest.json")}: stages[0].data.file: stage-0.onnx.data not found`,
  });
  // The workers still serve.
  const ok = tempDir();
  splitModel(model, { stages: 2 }, ok, { modelPath: "mlp.onnx" });
  const p = await deploy(ok, cluster.workers, { token: cluster.token });
  await p.infer({ x: randomTensor("float32", [1, 256]) });
  await p.close();
});

/** One stage whose second output is a string tensor (Cast to STRING), which tensor frames cannot carry. */
function stringOutputSpec(): FixtureSpec {
  return {
    tensors: {
      x: { dtype: "float32", shape: [1, 4] },
      y: { dtype: "float32", shape: [1, 4] },
      s: { dtype: "string", shape: [1, 4] },
    },
    weights: {},
    inputs: ["x"],
    outputs: ["y", "s"],
    stages: [
      {
        inputs: ["x"],
        outputs: ["y", "s"],
        ops: [
          { op: "Relu", inputs: ["x"], output: "y" },
          { op: "Cast", inputs: ["x"], output: "s", attrs: { to: 8 } },
        ],
      },
    ],
  };
}

test("an output the transport cannot carry fails its request naming worker, stage and tensor; the worker lives on", async () => {
  const fx = writeFixture(stringOutputSpec());
  const p = await deploy(fx.dir, [cluster.workers[0]], { token: cluster.token });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(p.infer({ x: randomTensor("float32", [1, 4], i + 1) }), {
      name: "RuntimeFault",
      message: `worker d0 (stage 0): request ${i + 1} failed: output tensor 's' is string, which tensor frames cannot carry (numeric and bool tensors only)`,
    });
  }
  const stats = await p.workerStats();
  assert.equal(stats[0].stages[0].errors, 3);
  assert.equal(stats[0].stages[0].runs, 0);
  await p.close();
  // The same worker process still serves the next deployment.
  assert.doesNotThrow(() => process.kill(cluster.pids[0], 0));
  const dir = tempDir();
  splitModel(model, { stages: 1 }, dir, { modelPath: "mlp.onnx" });
  const q = await deploy(dir, [cluster.workers[0]], { token: cluster.token });
  const feeds = { x: randomTensor("float32", [1, 256], 9) };
  assertOutputsClose(
    await q.infer(feeds),
    await (await createSession(model.graph.model)).run(feeds),
    "after",
  );
  await q.close();
});

test("thread counts are bounded: a positive integer, at most 4 per CPU", async () => {
  const max = maxSessionThreads();
  assert.ok(max >= 4);
  await assert.rejects(createSession(model.graph.model, { threads: max + 1 }), {
    name: "ArgumentError",
    message: new RegExp(
      `^threads: ${max + 1} threads is above the limit of ${max} \\(4 per CPU, \\d+ CPUs here\\)$`,
    ),
  });
  await assert.rejects(createSession(model.graph.model, { threads: 0 }), {
    message: "threads: expected a positive whole number of threads, got 0",
  });
  const s = await createSession(model.graph.model, { threads: 2 });
  const out = await s.run({ x: randomTensor("float32", [1, 256]) });
  assert.deepEqual(out.fc2.dims, [1, 64]);
  assert.ok(out.fc2 instanceof ort.Tensor);
});

test("a chunk out of order, past the announced length, or a stage over protobuf's limit is a load error", async () => {
  const endpoint = await startWorker({ name: "strict" });
  const { conn } = await connectWorker(new TcpTransport(), endpoint, { role: "coordinator", from: "test" });
  const errors: string[] = [];
  conn.onFrame((f) => {
    if (f.type === "control" && f.msg.t === "error") errors.push(String(f.msg.message));
  });
  const announce = (stage: number, bytes: number) =>
    conn.send({
      type: "control",
      requestId: 0,
      msg: {
        t: "load",
        deployment: "d",
        stage,
        worker: "strict",
        file: `s${stage}.onnx`,
        sha256: "0".repeat(64),
        bytes,
        inputs: [],
        outputs: [],
        routes: {},
        workers: [],
      },
    });
  const chunk = (stage: number, offset: number, n: number) =>
    conn.send({
      type: "control",
      requestId: 0,
      msg: { t: "load-chunk", stage, part: "model", offset },
      payload: new Uint8Array(n),
    });
  await announce(0, 100);
  await chunk(0, 50, 10);
  await announce(1, 100);
  await chunk(1, 0, 60);
  await chunk(1, 60, 60);
  await announce(2, PROTOBUF_LIMIT_BYTES + 1);
  const deadline = Date.now() + 5000;
  while (errors.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  conn.close();
  assert.deepEqual(errors, [
    "s0.onnx: chunk of 10 bytes for model at offset 50 does not follow the 0 of 100 bytes received",
    "s1.onnx: chunk of 60 bytes for model at offset 60 does not follow the 60 of 100 bytes received",
    `s2.onnx: ${PROTOBUF_LIMIT_BYTES + 1} bytes is over protobuf's limit of ${PROTOBUF_LIMIT_BYTES} (write its weights as external data)`,
  ]);
});
