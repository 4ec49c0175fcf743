import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { resolveSplit } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { ServeMetrics } from "../src/serve/metrics.js";
import { deployForServing, type ServedSplit } from "../src/serve/serve-split.js";
import { InferenceServer } from "../src/serve/server.js";

// A worker killed under load: the server stays live, answers every admitted request (those that met the
// fault run again once the deployment has recovered on the worker left; those arriving meanwhile are refused
// with 503), is ready again afterwards, and goes back to both workers once the killed one was restarted.

let served: ServedSplit;
let server: InferenceServer;
let base: string;

before(async () => {
  const g = new GraphBuilder("mlp");
  g.input("x", "float32", [1, 16]);
  g.node("MatMul", ["x", g.weight("w1", [16, 32])], {}, "h");
  g.node("Relu", ["h"], {}, "r");
  g.node("MatMul", ["r", g.weight("w2", [32, 8])], {}, "y");
  g.output("y", "float32", [1, 8]);
  const model = await analyzeModel(g.toModel(), { source: "mlp" });
  served = await deployForServing(
    model,
    resolveSplit(model, { stages: 2 }),
    ["core0", "core1"],
    loadClusterSpec("local"),
    "mlp",
  );
  const metrics = new ServeMetrics();
  server = new InferenceServer(served, { maxAdmitted: 200, metrics });
  metrics.attach(served, () => server.admitted);
  base = (await server.start()).url;
});

after(async () => {
  await server.stop();
  await served.close();
});

const infer = () =>
  fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { "Inference-Timeout-Ms": "20000" },
    body: JSON.stringify({
      inputs: [
        { name: "x", shape: [1, 16], datatype: "FP32", data: Array.from({ length: 16 }, (_, i) => i / 16) },
      ],
    }),
  });

test("a worker killed under load: live throughout, no admitted request lost, ready again after recovery", async () => {
  const want = (await (await infer()).json()).outputs[0].data;
  const victim = served.pipelineStats().workers[1].pid;
  // Requests in flight when the worker dies, and more arriving while it recovers.
  const load = Array.from({ length: 30 }, (_, i) =>
    new Promise((r) => setTimeout(r, i * 5)).then(() => infer()),
  );
  await new Promise((r) => setTimeout(r, 20));
  // Recovery of this small model can be over between two health probes: readiness is also read as the loss is
  // handled.
  let readyAtLoss: boolean | undefined;
  served.controller.on("lost", () => {
    readyAtLoss ??= served.ready();
  });
  process.kill(victim, "SIGKILL");
  let sawNotReady = false;
  const probes = (async () => {
    for (let i = 0; i < 100 && served.recoveries() === 0; i++) {
      assert.equal((await fetch(`${base}/v2/health/live`)).status, 200);
      if ((await fetch(`${base}/v2/health/ready`)).status !== 200) sawNotReady = true;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const answers = await Promise.all(load);
  await probes;
  // Each request is either answered correctly or, arriving while the deployment is not ready, refused at
  // the door with 503 (never admitted); none admitted ends in an error.
  let answered = 0;
  for (const r of answers) {
    const body = await r.json();
    if (r.status === 503) assert.match(body.error, /^model 'mlp' is not ready$/);
    else {
      assert.equal(r.status, 200, JSON.stringify(body));
      assert.deepEqual(body.outputs[0].data, want);
      answered++;
    }
  }
  assert.ok(answered > 0);
  assert.equal(served.recoveries(), 1);
  assert.ok(sawNotReady || readyAtLoss === false, "not ready while recovering");
  assert.equal(readyAtLoss, false);
  assert.equal((await fetch(`${base}/v2/health/ready`)).status, 200);
  // Its local worker is started again at its endpoint, found, and the first split deployed again.
  for (let i = 0; i < 500 && served.controller.replans.length === 0; i++)
    await new Promise((r) => setTimeout(r, 40));
  assert.equal(served.controller.replans[0]?.reason, "rejoin core1");
  assert.equal(served.pipelineStats().workers.length, 2);
  assert.notEqual(served.pipelineStats().workers[1].pid, victim);
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /^cleave_serve_recoveries 1$/m);
  assert.equal((await infer()).status, 200);
});
