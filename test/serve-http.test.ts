import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { createSession, ort } from "../src/onnx/ort.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";
import { cleave } from "./helpers/cli.js";

// A real `cleave serve` (two stages on the local cluster's two pinned workers) answering real HTTP requests
// built as the Open Inference Protocol's examples build them, with node's fetch.

const IN = 16;
const OUT = 8;
let dir: string;
let modelPath: string;
let serve: ChildProcess;
let base: string;
const stderr: string[] = [];

function mlp(): Uint8Array {
  const g = new GraphBuilder("mlp");
  g.input("x", "float32", [1, IN]);
  const w1 = g.weight("w1", [IN, 32]);
  const w2 = g.weight("w2", [32, OUT]);
  g.node("MatMul", ["x", w1], {}, "h");
  g.node("Relu", ["h"], {}, "r");
  g.node("MatMul", ["r", w2], {}, "y");
  g.output("y", "float32", [1, OUT]);
  return encodeModel(g.toModel());
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cleave-serve-test-"));
  modelPath = join(dir, "mlp.onnx");
  writeFileSync(modelPath, mlp());
  const [cmd, ...rest] = cliCommand();
  serve = spawn(cmd, [
    ...rest,
    "serve",
    modelPath,
    "--stages",
    "2",
    "--listen",
    "127.0.0.1:0",
    "--in-flight",
    "2",
    "--queue",
    "2",
    "--heartbeat-ms",
    "800",
  ]);
  serve.stderr?.on("data", (b: Buffer) => stderr.push(b.toString()));
  const rl = createInterface({ input: serve.stdout! });
  const [line] = (await Promise.race([
    once(rl, "line"),
    once(serve, "exit").then(() => {
      throw new Error(`cleave serve exited: ${stderr.join("")}`);
    }),
  ])) as [string];
  rl.close();
  const m = /on (http:\/\/[\d.]+:\d+)\/v2\/models\/mlp$/.exec(line);
  assert.ok(m, line);
  base = m[1];
});

after(async () => {
  if (serve.exitCode === null) {
    serve.kill("SIGKILL");
    await once(serve, "exit");
  }
  rmSync(dir, { recursive: true, force: true });
});

function input(seed: number): Float32Array {
  return Float32Array.from({ length: IN }, (_, i) => Math.sin(seed * 31 + i) * 2);
}

async function whole(x: Float32Array): Promise<Float32Array> {
  const { readFileSync } = await import("node:fs");
  const s = await createSession(readFileSync(modelPath));
  try {
    const out = await s.run({ x: new ort.Tensor("float32", x, [1, IN]) });
    return out.y.data as Float32Array;
  } finally {
    await s.release();
  }
}

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * (1 + Math.abs(b[i])), `${i}: ${a[i]} vs ${b[i]}`);
}

/** A binary-data request exactly as the binary tensor data extension's example lays it out. */
function binaryRequest(x: Float32Array, opts: { sizeDelta?: number; extra?: number } = {}) {
  const header = Buffer.from(
    JSON.stringify({
      id: "bin-1",
      inputs: [
        {
          name: "x",
          shape: [1, IN],
          datatype: "FP32",
          parameters: { binary_data_size: x.byteLength + (opts.sizeDelta ?? 0) },
        },
      ],
      outputs: [{ name: "y", parameters: { binary_data: true } }],
    }),
  );
  const data = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  const body = Buffer.concat([header, data, Buffer.alloc(opts.extra ?? 0)]);
  return {
    method: "POST",
    headers: {
      "Content-Type": "application/octet-stream",
      "Inference-Header-Content-Length": String(header.byteLength),
    },
    body,
  };
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(name) && (line[name.length] === " " || line[name.length] === "{"))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

test("--heartbeat-ms of 0 or not a number: one line naming the flag", () => {
  for (const v of ["0", "fast"]) {
    const r = cleave(["serve", modelPath, "--stages", "2", "--heartbeat-ms", v]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), `error: --heartbeat-ms: expected an integer >= 1, got '${v}'`);
  }
});

test("health, server and model metadata", async () => {
  const live = await fetch(`${base}/v2/health/live`);
  assert.equal(live.status, 200);
  assert.equal((await fetch(`${base}/v2/health/ready`)).status, 200);
  assert.equal((await fetch(`${base}/v2/models/mlp/ready`)).status, 200);
  const server = await (await fetch(`${base}/v2`)).json();
  assert.equal(server.name, "cleave");
  assert.ok(server.extensions.includes("binary_tensor_data"));
  const meta = await (await fetch(`${base}/v2/models/mlp`)).json();
  assert.deepEqual(meta.inputs, [{ name: "x", datatype: "FP32", shape: [1, IN] }]);
  assert.deepEqual(meta.outputs, [{ name: "y", datatype: "FP32", shape: [1, OUT] }]);
  assert.equal((await fetch(`${base}/v2/models/mlp/versions/1`)).status, 200);
});

test("JSON inference equals the whole model in onnxruntime, and echoes the request id", async () => {
  const x = input(1);
  const res = await fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      id: "42",
      inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: Array.from(x) }],
    }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.model_name, "mlp");
  assert.equal(body.id, "42");
  assert.equal(body.outputs[0].name, "y");
  assert.equal(body.outputs[0].datatype, "FP32");
  assert.deepEqual(body.outputs[0].shape, [1, OUT]);
  close(body.outputs[0].data, await whole(x));
  // Nested data (one list per row) is the same tensor.
  const nested = await fetch(`${base}/v2/models/mlp/versions/1/infer`, {
    method: "POST",
    body: JSON.stringify({
      inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: [Array.from(x)] }],
    }),
  });
  close((await nested.json()).outputs[0].data, await whole(x));
});

test("binary tensor data in and out equals the whole model", async () => {
  const x = input(2);
  const res = await fetch(`${base}/v2/models/mlp/infer`, binaryRequest(x));
  assert.equal(res.status, 200, await res.clone().text());
  const hl = Number(res.headers.get("inference-header-content-length"));
  const buf = Buffer.from(await res.arrayBuffer());
  const head = JSON.parse(buf.subarray(0, hl).toString());
  assert.equal(head.id, "bin-1");
  assert.equal(head.outputs[0].parameters.binary_data_size, OUT * 4);
  assert.equal(head.outputs[0].data, undefined);
  assert.equal(buf.byteLength, hl + OUT * 4);
  const y = new Float32Array(new Uint8Array(buf.subarray(hl)).buffer);
  close(y, await whole(x));
  // Binary input, JSON output (no binary_data asked for).
  const mixed = binaryRequest(x);
  const h = JSON.parse(
    mixed.body.subarray(0, Number(mixed.headers["Inference-Header-Content-Length"])).toString(),
  );
  delete h.outputs;
  const head2 = Buffer.from(JSON.stringify(h));
  const r2 = await fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { "Inference-Header-Content-Length": String(head2.byteLength) },
    body: Buffer.concat([head2, Buffer.from(x.buffer)]),
  });
  assert.equal(r2.headers.get("inference-header-content-length"), null);
  close((await r2.json()).outputs[0].data, await whole(x));
});

test("bad requests get 400 with a one-line reason, and the server keeps serving", async () => {
  const x = Array.from(input(3));
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: "POST", headers, body });
  const cases: Array<[string, Promise<Response>, RegExp]> = [
    ["unknown model", post("/v2/models/nope/infer", "{}"), /unknown model 'nope'/],
    ["not JSON", post("/v2/models/mlp/infer", "{not json"), /not JSON/],
    [
      "wrong shape",
      post(
        "/v2/models/mlp/infer",
        JSON.stringify({ inputs: [{ name: "x", shape: [2, IN], datatype: "FP32", data: [...x, ...x] }] }),
      ),
      /shape \[2,16\], the model takes \[1,16\]/,
    ],
    [
      "wrong datatype",
      post(
        "/v2/models/mlp/infer",
        JSON.stringify({
          inputs: [{ name: "x", shape: [1, IN], datatype: "INT64", data: x.map(Math.round) }],
        }),
      ),
      /datatype "INT64", the model takes FP32/,
    ],
    [
      "too few elements",
      post(
        "/v2/models/mlp/infer",
        JSON.stringify({ inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: x.slice(1) }] }),
      ),
      /15 elements, shape \[1,16\] has 16/,
    ],
    [
      "binary size smaller than the shape",
      fetch(`${base}/v2/models/mlp/infer`, binaryRequest(input(3), { sizeDelta: -4, extra: -0 })),
      /binary_data_size is 60 bytes, shape \[1,16\] of FP32 takes 64|past what/,
    ],
    [
      "binary data past the sizes",
      fetch(`${base}/v2/models/mlp/infer`, binaryRequest(input(3), { extra: 4 })),
      /4 bytes of binary data past/,
    ],
    [
      "binary size past the body",
      fetch(`${base}/v2/models/mlp/infer`, binaryRequest(input(3), { sizeDelta: 4 })),
      /runs past the end of the body/,
    ],
    ["unknown version", post("/v2/models/mlp/versions/7/infer", "{}"), /no version '7'/],
  ];
  for (const [what, p, re] of cases) {
    const r = await p;
    assert.equal(r.status, 400, what);
    const body = await r.json();
    assert.match(body.error, re, what);
    assert.ok(!body.error.includes("\n"), what);
  }
  const ok = await post(
    "/v2/models/mlp/infer",
    JSON.stringify({ inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: x }] }),
  );
  assert.equal(ok.status, 200);
  close((await ok.json()).outputs[0].data, await whole(input(3)));
});

test("100 concurrent clients with a queue of 2 get answers or a clean 429, and nothing hangs", async () => {
  const okBefore = await metric('cleave_serve_requests_total{outcome="ok"}');
  const runsBefore = await metric("cleave_stage_runs_total");
  const x = input(4);
  const want = await whole(x);
  const results = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const r = await fetch(`${base}/v2/models/mlp/infer`, {
        ...binaryRequest(x),
        signal: AbortSignal.timeout(15000),
      });
      if (r.status === 200) {
        const hl = Number(r.headers.get("inference-header-content-length"));
        const buf = Buffer.from(await r.arrayBuffer());
        close(new Float32Array(new Uint8Array(buf.subarray(hl)).buffer), want);
      } else {
        const body = await r.json();
        assert.match(body.error, /server busy: 4 requests admitted already/);
        assert.equal(r.headers.get("retry-after"), "1");
      }
      return r.status;
    }),
  );
  const ok = results.filter((s) => s === 200).length;
  const busy = results.filter((s) => s === 429).length;
  assert.equal(ok + busy, 100, `statuses: ${[...new Set(results)]}`);
  assert.ok(ok >= 4, `${ok} answered`);
  assert.ok(busy > 0, "a queue of 2 took 100 clients at once");
  // The metrics moved by what happened.
  assert.equal((await metric('cleave_serve_requests_total{outcome="ok"}')) - okBefore, ok);
  assert.ok((await metric('cleave_serve_requests_total{outcome="queue_full"}')) >= busy);
  // Each answered request ran both stages.
  assert.equal((await metric("cleave_stage_runs_total")) - runsBefore, 2 * ok);
  assert.ok((await metric("cleave_stage_compute_seconds_total")) > 0);
  assert.ok((await metric("cleave_link_bytes")) > 0);
  assert.ok((await metric("cleave_measured_throughput")) > 0);
  assert.equal(await metric("cleave_serve_admitted_requests"), 0);
});

test("a request within its timeout (header or parameter) is answered", async () => {
  const x = Array.from(input(5));
  const r = await fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { "Inference-Timeout-Ms": "10000" },
    body: JSON.stringify({
      parameters: { timeout: 10_000_000 },
      inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: x }],
    }),
  });
  assert.equal(r.status, 200);
  close((await r.json()).outputs[0].data, await whole(input(5)));
});

test("SIGTERM: the server stops, undeploys and exits 0", async () => {
  serve.kill("SIGTERM");
  const [code] = (await once(serve, "exit")) as [number];
  assert.equal(code, 0, stderr.join(""));
  await assert.rejects(fetch(`${base}/v2/health/live`));
});
