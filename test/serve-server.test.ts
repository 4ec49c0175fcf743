import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ort } from "../src/onnx/ort.js";
import type { Tensors } from "../src/runtime/coordinator/pipeline.js";
import { InferenceServer, type ServedModel } from "../src/serve/server.js";

// The server's own rules (deadlines, admission, readiness) against a model that takes a known time: it
// answers after `delayMs` unless the request's signal aborts first.

const delayMs = 150;
let ready = true;
let started = 0;
const slow: ServedModel = {
  name: "slow",
  signature: {
    inputs: [{ name: "x", dtype: "float32", shape: [1] }],
    outputs: [{ name: "y", dtype: "float32", shape: [1] }],
  },
  ready: () => ready,
  infer(feeds: Tensors, opts: { signal: AbortSignal }) {
    started++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => resolve({ y: new ort.Tensor("float32", feeds.x.data as Float32Array, [1]) }),
        delayMs,
      );
      opts.signal.addEventListener("abort", () => {
        clearTimeout(t);
        reject(opts.signal.reason);
      });
    });
  },
};
let server: InferenceServer;
let base: string;
before(async () => {
  server = new InferenceServer(slow, { maxAdmitted: 2 });
  base = (await server.start()).url;
});
after(() => server.stop());

const body = (parameters: Record<string, unknown> = {}) =>
  JSON.stringify({ parameters, inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [3] }] });
const infer = (b: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/v2/models/slow/infer`, { method: "POST", headers, body: b });

test("a request's deadline, from the header or the timeout parameter, ends it with 504", async () => {
  const t0 = performance.now();
  const h = await infer(body(), { "Inference-Timeout-Ms": "20" });
  assert.equal(h.status, 504);
  assert.deepEqual(await h.json(), { error: "request timed out after 20 ms" });
  const p = await infer(body({ timeout: 30_000 }));
  assert.equal(p.status, 504);
  assert.deepEqual(await p.json(), { error: "request timed out after 30 ms" });
  assert.ok(performance.now() - t0 < delayMs * 2, "the deadlines cut the requests short");
  const ok = await infer(body({ timeout: 5_000_000 }));
  assert.equal(ok.status, 200);
  assert.deepEqual((await ok.json()).outputs[0].data, [3]);
  assert.equal((await infer(body(), { "Inference-Timeout-Ms": "soon" })).status, 400);
});

test("past maxAdmitted a request gets 429 at once, and the admitted ones are answered", async () => {
  const before = started;
  const first = [infer(body()), infer(body())];
  await new Promise((r) => setTimeout(r, 30));
  const t0 = performance.now();
  const third = await infer(body());
  assert.ok(performance.now() - t0 < delayMs, "refused without waiting");
  assert.equal(third.status, 429);
  assert.match((await third.json()).error, /server busy: 2 requests admitted already/);
  for (const r of await Promise.all(first)) assert.equal(r.status, 200);
  assert.equal(started - before, 2, "the refused request never reached the model");
});

test("not ready: health and model readiness say so, inference gets 503; unknown paths 404", async () => {
  ready = false;
  try {
    assert.equal((await fetch(`${base}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${base}/v2/health/ready`)).status, 400);
    assert.equal((await fetch(`${base}/v2/models/slow/ready`)).status, 400);
    const r = await infer(body());
    assert.equal(r.status, 503);
    assert.deepEqual(await r.json(), { error: "model 'slow' is not ready" });
  } finally {
    ready = true;
  }
  assert.equal((await fetch(`${base}/v2/health/ready`)).status, 200);
  assert.equal((await fetch(`${base}/v3/anything`)).status, 404);
  assert.equal((await fetch(`${base}/metrics`)).status, 404);
});
