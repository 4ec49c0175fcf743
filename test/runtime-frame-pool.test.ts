import assert from "node:assert/strict";
import { test } from "node:test";
import type { Manifest } from "../src/export/manifest.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { FramePool } from "../src/runtime/transport/frame-pool.js";
import { decodeFrame, encodeFrame, type TensorFrame } from "../src/runtime/transport/frame.js";
import type { Tensors } from "../src/runtime/coordinator/pipeline.js";
import { Worker } from "../src/runtime/worker/worker.js";
import { ort } from "../src/onnx/ort.js";
import { seededRandom } from "../src/onnx/prng.js";
import { writeFixture } from "./runtime-fixture.js";

test("FramePool lends large buffers, takes each back once, and never one it did not lend", () => {
  const pool = new FramePool(1024, 2);
  const small = pool.take(100);
  pool.give(small);
  assert.equal(pool.take(100) === small, false, "small frames are not pooled");
  const a = pool.take(4096);
  const b = pool.take(4096);
  assert.notEqual(a.buffer, b.buffer);
  pool.give(a.subarray(8));
  pool.give(a); // a second hand-back of the same buffer is ignored
  const c = pool.take(4096);
  assert.equal(c.buffer, a.buffer, "a handed-back buffer is lent again");
  assert.equal(pool.reused, 1);
  assert.notEqual(pool.take(4096).buffer, a.buffer, "it was lent once only");
  pool.give(Buffer.alloc(4096)); // not lent by this pool
  pool.forget(b);
  pool.give(b);
  assert.notEqual(pool.take(4096).buffer, b.buffer, "a forgotten buffer is not taken back");
  assert.equal(pool.reused, 1);
  assert.equal(pool.take(2048).length, 2048, "sizes are pooled apart");
});

test("FramePool: a lent buffer moved to a thread comes back by adopt and is lent again", () => {
  const pool = new FramePool(1024, 2);
  const a = pool.take(4096);
  assert.equal(pool.lends(a.subarray(16)), true);
  assert.equal(pool.lends(Buffer.alloc(4096)), false);
  // What a worker does before moving a buffer to a stage thread, and what comes back (a new object).
  pool.forget(a);
  assert.equal(pool.lends(a), false);
  const back = new ArrayBuffer(4096);
  pool.adopt(back);
  assert.equal(pool.take(4096).buffer, back, "the buffer that came back is lent again");
  assert.equal(pool.reused, 1);
  pool.adopt(new ArrayBuffer(100)); // below the pooled size: not kept
  assert.notEqual(pool.take(100).byteLength, 0);
  assert.equal(pool.reused, 1);
});

test("a decoded tensor frame's path is a copy, also when the frame was received into a Buffer", () => {
  const parts = encodeFrame({
    type: "tensor",
    requestId: 7,
    name: "x",
    dtype: "float32",
    shape: [2],
    data: new Uint8Array(new Float32Array([1, 2]).buffer),
    path: Uint8Array.from([0, 1, 2]),
  });
  const buf = Buffer.alloc(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    buf.set(part, at);
    at += part.byteLength;
  }
  const f = decodeFrame(buf);
  assert.equal(f.type, "tensor");
  const path = (f as TensorFrame).path!;
  buf.fill(9); // the receive buffer reused (or moved to a stage thread)
  assert.deepEqual([...path], [0, 1, 2]);
});

// auto: w1 runs its one stage inline, w2 its two on threads.
for (const runs of ["thread", "inline", "auto"] as const)
  test(`workers reuse stage-input buffers without mixing up requests; a tensor two stages read is kept (runs: ${runs})`, async () => {
    const width = 32768; // 128 KiB per tensor: above the pool's 64 KiB floor
    const t = { dtype: "float32" as const, shape: [1, width] };
    const fx = writeFixture({
      tensors: { x: t, a: t, y: t, z: t },
      weights: {},
      inputs: ["x"],
      outputs: ["z"],
      stages: [
        { inputs: ["x"], outputs: ["a"], ops: [{ op: "Relu", inputs: ["x"], output: "a" }] },
        { inputs: ["a", "x"], outputs: ["y"], ops: [{ op: "Add", inputs: ["a", "x"], output: "y" }] },
        { inputs: ["y", "x"], outputs: ["z"], ops: [{ op: "Mul", inputs: ["y", "x"], output: "z" }] },
      ],
    });
    // Stage 0 on w1; stages 1 and 2 on w2, both reading x.
    const manifest: Manifest = {
      ...fx.manifest,
      stages: fx.manifest.stages.map((s, i) => ({ ...s, device: i === 0 ? "w1" : "w2" })),
    };
    const workers = [
      new Worker({ name: "w1", token: "k", runs }),
      new Worker({ name: "w2", token: "k", runs }),
    ];
    const addrs = await Promise.all(workers.map((w) => w.start()));
    try {
      const pipeline = await deploy(
        { manifest, dir: fx.dir },
        workers.map((w, i) => ({ name: w.name, endpoint: `${addrs[i].host}:${addrs[i].port}` })),
        { token: "k", maxInFlight: 4 },
      );
      try {
        const n = 40;
        const inputs: Tensors[] = Array.from({ length: n }, (_, i) => {
          const r = seededRandom(i + 1);
          const x = Float32Array.from({ length: width }, () => r() * 2 - 1);
          return { x: new ort.Tensor("float32", x, [1, width]) };
        });
        const report = await pipeline.runMany(inputs, { inFlight: 4, keepOutputs: true });
        assert.equal(report.failed, 0, JSON.stringify(report.errors));
        for (let i = 0; i < n; i++) {
          const x = inputs[i].x.data as Float32Array;
          const z = report.outputs?.[i]?.z.data as Float32Array;
          for (let j = 0; j < width; j++) {
            const want = Math.fround(Math.fround(Math.max(0, x[j]) + x[j]) * x[j]);
            if (z[j] !== want) assert.fail(`request ${i}: z[${j}] = ${z[j]}, want ${want}`);
          }
        }
        const stats = await pipeline.workerStats();
        const reused = (name: string) => stats.find((s) => s.worker === name)?.receiveBuffersReused ?? 0;
        assert.ok(reused("w1") > n / 2, `w1 reused ${reused("w1")} buffers`);
        assert.ok(reused("w2") > n / 2, `w2 reused ${reused("w2")} buffers (for a)`);
      } finally {
        await pipeline.close();
      }
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });
