import assert from "node:assert/strict";
import { test } from "node:test";
import type { Manifest } from "../src/export/manifest.js";
import { createSession, randomTensor } from "../src/onnx/ort.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import type { Tensors } from "../src/runtime/coordinator/pipeline.js";
import { reassignStages } from "../src/runtime/control/reassign.js";
import { startController } from "../src/runtime/control/service.js";
import { type FixtureSpec, writeFixture } from "./runtime-fixture.js";
import { alive, until } from "./helpers/chaos.js";
import { assertOutputsClose } from "./helpers/compare.js";

const f32 = (shape: number[]) => ({ dtype: "float32" as const, shape });

const CONVS = 20;

/**
 * Stage 0: twenty 3x3 convolutions of 64 channels at 128 x 128 (12 GMACs: a run far longer than the heartbeat);
 * stage 1: Sigmoid.
 */
function slowSpec(): FixtureSpec {
  const ops = [];
  let x = "x";
  for (let i = 0; i < CONVS; i++) {
    ops.push({ op: "Conv", inputs: [x, "W"], output: `c${i}`, attrs: { pads: [1, 1, 1, 1] } });
    ops.push({ op: "Relu", inputs: [`c${i}`], output: `r${i}` });
    x = `r${i}`;
  }
  const tensors: FixtureSpec["tensors"] = { x: f32([1, 64, 128, 128]), y: f32([1, 64, 128, 128]) };
  for (let i = 0; i < CONVS; i++) {
    tensors[`c${i}`] = f32([1, 64, 128, 128]);
    tensors[`r${i}`] = f32([1, 64, 128, 128]);
  }
  return {
    tensors,
    weights: { W: [64, 64, 3, 3] },
    inputs: ["x"],
    outputs: ["y"],
    stages: [
      { inputs: ["x"], outputs: [x], ops },
      { inputs: [x], outputs: ["y"], ops: [{ op: "Sigmoid", inputs: [x], output: "y" }] },
    ],
  };
}

test("a stage run much longer than the heartbeat raises no alarm; the same worker stopped while idle is found within it", async () => {
  const fixture = writeFixture(slowSpec());
  const manifest: Manifest = {
    ...fixture.manifest,
    stages: fixture.manifest.stages.map((s, i) => ({ ...s, device: `w${i}`, macs: 1 })),
  };
  const whole = await createSession(fixture.whole);
  const feeds = (i: number): Tensors => ({ x: randomTensor("float32", [1, 64, 128, 128], 7 + i) });
  // The heartbeat is set against this machine's speed, so a stage-0 run always lasts several heartbeats (a
  // fixed 250 ms was once longer than the whole run: 218 ms on a fast host).
  await whole.run(feeds(0));
  const t0 = performance.now();
  await whole.run(feeds(1));
  const heartbeatMs = Math.max(50, Math.min(250, Math.round((performance.now() - t0) / 3)));
  const cluster = await startLocalWorkers([{ name: "w0" }, { name: "w1" }]);
  const pids = [...cluster.pids];
  const c = await startController({ manifest, dir: fixture.dir }, cluster.workers, {
    deploy: { token: cluster.token, maxInFlight: 2, timeoutMs: 60000 },
    heartbeatMs,
    rejoin: false,
    replan: async (alive) => ({ manifest: reassignStages(manifest, alive), dir: fixture.dir }),
  });
  let stopped = false;
  try {
    const runs: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      const out = await c.infer(feeds(i));
      runs.push(performance.now() - t0);
      assertOutputsClose(out, (await whole.run(feeds(i))) as Tensors, `request ${i}`);
    }
    // The runs are long against the heartbeat, yet no worker was lost.
    const [w0] = await c.workerStats();
    const perRun = w0.stages[0].computeMs / w0.stages[0].runs;
    assert.ok(perRun > heartbeatMs, `a stage-0 run takes ${perRun.toFixed(0)} ms, not > ${heartbeatMs}`);
    // Service time holds the run and its framing: at least the compute, and not much more on an idle device.
    const service = w0.stages[0].serviceMs ?? Number.NaN;
    assert.ok(
      service >= w0.stages[0].computeMs && service < 1.5 * w0.stages[0].computeMs + 50,
      `service ${service} ms against compute ${w0.stages[0].computeMs} ms`,
    );
    assert.equal(c.recoveries.length, 0, JSON.stringify(c.recoveries));
    assert.equal(c.lostDevices.length, 0);
    assert.equal(c.currentEpoch, 1);

    process.kill(pids[0], "SIGSTOP");
    stopped = true;
    await until(() => c.lostDevices.includes("w0"), 10000, "w0 is found silent");
    const out = await c.infer(feeds(9));
    assertOutputsClose(out, (await whole.run(feeds(9))) as Tensors, "after the loss");
    const r = c.recoveries[0];
    assert.equal(r.cause, "unresponsive");
    assert.equal(r.device, "w0");
    // Idle, it has no run allowance: found after the heartbeat, well before a run's allowance would end.
    assert.ok(
      r.detectedMs > 0.75 * heartbeatMs && r.detectedMs < heartbeatMs + 3 * perRun,
      JSON.stringify(r),
    );
  } finally {
    if (stopped) process.kill(pids[0], "SIGCONT");
    await c.close();
    await cluster.stop();
    await whole.release();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});
