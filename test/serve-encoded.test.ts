import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { resolveSplit } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { loadModel } from "../src/onnx/model-io.js";
import { createSession, ort } from "../src/onnx/ort.js";
import type { Plan } from "../src/partition/plan.js";
import { deployForServing } from "../src/serve/serve-split.js";
import { cliCommand, hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { cleave } from "./helpers/cli.js";
import { cameraServerYaml } from "./helpers/pair.js";

// A real `cleave serve --plan` of a plan whose graph input travels as int8 over a slow link: the stages it
// deploys encode on the camera (the input device) and decode on the server, on two pinned local workers, and a
// KServe v2 JSON request over node's fetch gets the whole model's answer within int8's error.

const IN = 16;
const OUT = 8;
const skip = hasTaskset() ? false : "taskset is missing";
let dir: string;
let modelPath: string;
let planPath: string;
let serve: ChildProcess | undefined;
let base: string;
let startup: string;
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

const CLUSTER = cameraServerYaml("slow-link", "20Mbit/s", false);

/** x is sin(...) * 2, in [-2, 2]: 255 steps over that range, zero at 128. */
const X_INT8 = { tensor: "x", encoding: "int8" as const, scale: [4 / 255], zeroPoint: [128] };
const FIDELITY = { maxRelError: 0.01, meanRelError: 0.004, samples: 8 };

/** Starts `cleave serve` on the model with `args`; returns it once it prints the line with its URL. */
async function startServe(args: string[], err: string[]): Promise<{ child: ChildProcess; line: string }> {
  const [cmd, ...rest] = cliCommand();
  const child = spawn(cmd, [...rest, "serve", modelPath, ...args, "--listen", "127.0.0.1:0"]);
  child.stderr?.on("data", (b: Buffer) => err.push(b.toString()));
  const rl = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(rl, "line"),
    once(child, "exit").then(() => {
      throw new Error(`cleave serve exited: ${err.join("")}`);
    }),
  ])) as [string];
  rl.close();
  return { child, line };
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "cleave-serve-enc-"));
  modelPath = join(dir, "mlp.onnx");
  writeFileSync(modelPath, mlp());
  const cluster = join(dir, "slow-link.yaml");
  writeFileSync(cluster, CLUSTER);
  planPath = join(dir, "plan.json");
  // The whole model on the server; its input, held by the camera, is then sent int8 through an encoder stage.
  const r = cleave(["plan", modelPath, "--cluster", cluster, "--devices", "server", "-o", planPath]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(readFileSync(planPath, "utf8")) as Plan;
  assert.deepEqual(
    plan.stages.map((s) => s.device),
    ["server"],
  );
  plan.encodings = {
    budget: { maxRelError: 0.05 },
    calibration: "generated",
    inputs: { calibration: 8, held: 8 },
    tensors: [{ ...X_INT8, bytes: 4 * IN, encodedBytes: IN }],
    fidelity: { calibration: FIDELITY, held: FIDELITY },
    classifier: false,
    rounds: 1,
  };
  writeFileSync(planPath, JSON.stringify(plan));
  const started = await startServe(["--plan", planPath], stderr);
  serve = started.child;
  startup = started.line;
  const m = /on (http:\/\/[\d.]+:\d+)\/v2\/models\/mlp$/.exec(startup);
  assert.ok(m, startup);
  base = m[1];
});

after(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill("SIGKILL");
    await once(serve, "exit");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function input(seed: number): Float32Array {
  return Float32Array.from({ length: IN }, (_, i) => Math.sin(seed * 31 + i) * 2);
}

async function whole(x: Float32Array): Promise<Float32Array> {
  const s = await createSession(readFileSync(modelPath));
  try {
    const out = await s.run({ x: new ort.Tensor("float32", x, [1, IN]) });
    return out.y.data as Float32Array;
  } finally {
    await s.release();
  }
}

test("serve --plan with an encoded input: encoder stage on the camera, encodings and fidelity at startup", {
  skip,
}, () => {
  assert.match(startup, /^cleave serve: model 'mlp' \(camera \[encoder\] > server\) on http/);
  const err = stderr.join("");
  assert.match(err, /cleave serve: {3}x: int8, 64 B -> 16 B\n/);
  assert.match(err, /cleave serve: measured on held-out inputs: {4}max rel error 1\.00e-2/);
});

test("metadata names the model's tensors, and a JSON request gets the whole model's answer within int8's error", {
  skip,
}, async () => {
  const meta = await (await fetch(`${base}/v2/models/mlp`)).json();
  assert.deepEqual(meta.inputs, [{ name: "x", datatype: "FP32", shape: [1, IN] }]);
  assert.deepEqual(meta.outputs, [{ name: "y", datatype: "FP32", shape: [1, OUT] }]);
  for (const seed of [1, 2, 3]) {
    const x = input(seed);
    const res = await fetch(`${base}/v2/models/mlp/infer`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "x", shape: [1, IN], datatype: "FP32", data: [...x] }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    assert.equal(body.outputs[0].name, "y");
    const got = body.outputs[0].data as number[];
    const want = await whole(x);
    const scale = Math.max(...want.map(Math.abs));
    const diff = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
    assert.ok(diff <= 5e-2 * scale, `seed ${seed}: ${diff} off at most, outputs up to ${scale}`);
    // The input really went through int8 (a float32 fallback would be exact to float32's rounding).
    assert.ok(diff > 1e-6 * scale, `seed ${seed}: exact, so x was not encoded`);
  }
  // Both stages ran, each on its own worker.
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /cleave_stage_runs_total\{worker="camera",stage="0"\} [1-9]/);
  assert.match(text, /cleave_stage_runs_total\{worker="server",stage="1"\} [1-9]/);
});

test("serve --fidelity with --plan: one line, the budget has nothing to plan", { skip }, () => {
  const r = cleave(["serve", modelPath, "--plan", planPath, "--fidelity", "top1=0.99"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim(),
    /^error: --fidelity\/--max-rel-error: a budget is planned for, and --plan gives/,
  );
});

test("serve --max-rel-error without a plan plans under the budget and says what it chose", {
  skip,
}, async () => {
  const err: string[] = [];
  const { child, line } = await startServe(
    ["--cluster", join(dir, "slow-link.yaml"), "--max-rel-error", "0.05"],
    err,
  );
  try {
    assert.match(line, /^cleave serve: model 'mlp' /);
    const said = err.join("");
    assert.match(said, /cleave serve: planned \d+ stage\(s\)/);
    assert.match(said, /cleave serve: fidelity budget max-rel-error=0\.05;/);
    assert.match(said, /cleave serve: measured on held-out inputs: /);
  } finally {
    child.kill("SIGINT");
    const [code] = await once(child, "exit");
    assert.equal(code, 0, err.join(""));
  }
});

test("a lost worker: the stages moved by reassignment still encode x (same answers as before the loss)", {
  skip,
}, async () => {
  const model = await analyzeModel(loadModel(modelPath), { source: modelPath });
  const cluster = loadClusterSpec(join(dir, "slow-link.yaml"));
  const served = await deployForServing(
    model,
    resolveSplit(model, { stages: 1 }),
    ["server"],
    cluster,
    "mlp",
    {
      encodings: [X_INT8],
      heartbeatMs: 500,
    },
  );
  try {
    assert.equal(served.encoderStage, true);
    assert.deepEqual(served.devices, [["camera"], ["server"]]);
    const x = input(7);
    const ask = async () =>
      (
        await served.infer(
          { x: new ort.Tensor("float32", x, [1, IN]) },
          { signal: AbortSignal.timeout(20000) },
        )
      ).y.data as Float32Array;
    const before = Array.from(await ask());
    const exact = Array.from(await whole(x));
    assert.notDeepEqual(before, exact, "x was encoded");
    const camera = served.pipelineStats().workers.find((w) => w.name === "camera");
    assert.ok(camera, "a worker runs the encoder stage on the camera");
    process.kill(camera.pid, "SIGKILL");
    // The request that meets the fault runs again on the server alone, which now runs the encoder stage too.
    assert.deepEqual(Array.from(await ask()), before);
    assert.equal(served.recoveries(), 1);
  } finally {
    await served.close();
  }
});
