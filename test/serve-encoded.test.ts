import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { createSession, ort } from "../src/onnx/ort.js";
import type { Plan } from "../src/partition/plan.js";
import { cliCommand, hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { buildZooModel } from "../src/zoo/index.js";
import { cleave } from "./helpers/cli.js";

// `cleave serve --plan` of a plan made under a fidelity budget serves it as planned: the cut tensors travel
// encoded (int8 or float16 in the stage models), so the answers are close to the whole model's, within the
// encoding's error, and not float32-exact; the startup says which tensors are encoded.

const skip = hasTaskset() ? false : "taskset is missing";
let dir: string;
let serve: ChildProcess | undefined;
let base: string;
let name: string;
let plan: Plan;
const stderr: string[] = [];

// camera-server's shape on local workers (the camera holds the input, priced at an eighth of a core) with a
// link slow enough for encoded cuts to pay.
const CLUSTER = `name: slow-link
inputDevice: camera
outputDevice: server
devices:
  - name: camera
    kind: cpu
    throughput: 6.5 GMAC/s
    memoryBandwidth: 2.5GB/s
    memory: 1GiB
    idlePower: 0.125W
    activePower: 0.375W
    cpus: [1]
    cpuShare: 0.125
    threads: 1
  - name: server
    kind: cpu
    throughput: 52 GMAC/s
    memoryBandwidth: 20GB/s
    memory: 4GiB
    idlePower: 1W
    activePower: 3W
    cpus: [0]
    threads: 1
links:
  - devices: [camera, server]
    kind: wifi
    bandwidth: 50Mbit/s
    latency: 2ms
    energyPerBit: 50nJ/bit
`;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "cleave-serve-encoded-"));
  const cluster = join(dir, "slow-link.yaml");
  writeFileSync(cluster, CLUSTER);
  const planFile = join(dir, "plan.json");
  const r = cleave(
    ["plan", "zoo:squeezenet1_1", "--cluster", cluster, "--fidelity", "top1=0.99", "-o", planFile],
    { timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  plan = JSON.parse(readFileSync(planFile, "utf8")) as Plan;
  const [cmd, ...rest] = cliCommand();
  serve = spawn(cmd, [...rest, "serve", "zoo:squeezenet1_1", "--plan", planFile, "--listen", "127.0.0.1:0"]);
  serve.stderr?.on("data", (b: Buffer) => stderr.push(b.toString()));
  const rl = createInterface({ input: serve.stdout! });
  const [line] = (await Promise.race([
    once(rl, "line"),
    once(serve, "exit").then(() => {
      throw new Error(`cleave serve exited: ${stderr.join("")}`);
    }),
  ])) as [string];
  rl.close();
  const m = /on (http:\/\/[\d.]+:\d+)\/v2\/models\/(\S+)$/.exec(line);
  assert.ok(m, line);
  base = m[1];
  name = m[2];
});

after(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill("SIGTERM");
    await once(serve, "exit");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("an encoded plan is served with its cut tensors encoded, within the encoding's error of the whole model", {
  skip,
}, async () => {
  const tensors = plan.encodings?.tensors ?? [];
  assert.ok(tensors.length > 0, "the plan encodes some cut tensor");
  // The startup names every encoded tensor with its encoding.
  const said = stderr.join("");
  for (const t of tensors) assert.ok(said.includes(`${t.tensor}: ${t.encoding}`), said);
  // The model's own interface, not the wire tensors'.
  const meta = (await (await fetch(`${base}/v2/models/${name}`)).json()) as {
    inputs: Array<{ name: string; shape: number[] }>;
    outputs: Array<{ name: string }>;
  };
  const zoo = buildZooModel("squeezenet1_1");
  const inputName = zoo.graph!.input[0].name;
  const outputName = zoo.graph!.output[0].name;
  assert.deepEqual(
    meta.inputs.map((i) => i.name),
    [inputName],
  );
  assert.deepEqual(
    meta.outputs.map((o) => o.name),
    [outputName],
  );
  const shape = [1, 3, 224, 224];
  const session = await createSession(zoo);
  try {
    for (const seed of [1, 2]) {
      const x = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(seed * 7 + i * 0.37));
      const res = await fetch(`${base}/v2/models/${name}/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [{ name: inputName, shape, datatype: "FP32", data: Array.from(x) }] }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { outputs: Array<{ name: string; data: number[] }> };
      const got = body.outputs.find((o) => o.name === outputName)!.data;
      const want = (await session.run({ [inputName]: new ort.Tensor("float32", x, shape) }))[outputName]
        .data as Float32Array;
      assert.equal(got.length, want.length);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      // Encoded, so not float32-exact, but within the int8/float16 error the planner measured (a few 1e-3).
      assert.ok(diff > 0, "outputs are float32-exact: the cut was not encoded");
      assert.ok(diff <= 5e-2 * scale, `max diff ${diff} against max |output| ${scale}`);
    }
  } finally {
    await session.release();
  }
});
