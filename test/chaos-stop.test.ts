import assert from "node:assert/strict";
import { test } from "node:test";
import {
  alive,
  assertAllCorrect,
  chaosCluster,
  chaosModel,
  expectedOutputs,
  streamWithFault,
  until,
} from "./helpers/chaos.js";

const COUNT = 240;

test("SIGSTOP of the middle worker: found silent within the heartbeat, requests run on the rest; after SIGCONT it rejoins and its cached stages ship nothing", async () => {
  const { fixture, manifest } = chaosModel();
  const want = await expectedOutputs(fixture, COUNT);
  const { cluster, controller } = await chaosCluster(manifest, fixture.dir, { heartbeatMs: 600 });
  const pids = [...cluster.pids];
  let stopped = false;
  try {
    const { outcomes, answers } = await streamWithFault(controller, COUNT, 60, () => {
      process.kill(pids[1], "SIGSTOP");
      stopped = true;
    });
    assertAllCorrect(outcomes, answers, want);
    assert.equal(controller.recoveries.length, 1, JSON.stringify(controller.recoveries));
    const r = controller.recoveries[0];
    assert.equal(r.device, "w1");
    assert.equal(r.cause, "unresponsive");
    // Silent past the heartbeat (600 ms, or a stage run's allowance), and noticed well before a request deadline.
    assert.ok(r.detectedMs >= 600 && r.detectedMs < 5000, JSON.stringify(r));
    assert.ok(controller.lostDevices.includes("w1"));

    process.kill(pids[1], "SIGCONT");
    stopped = false;
    await until(() => controller.replans.length > 0, 20000, "w1 rejoins");
    const back = controller.replans[0];
    assert.equal(back.reason, "rejoin w1");
    assert.equal(back.shippedBytes, 0, "every worker had its stage of the first plan in its cache");
    assert.deepEqual(
      controller.deployed.manifest.stages.map((s) => s.device),
      ["w0", "w1", "w2"],
    );
    const more = await streamWithFault(controller, 40, 41, () => {});
    assertAllCorrect(more.outcomes, more.answers, want.slice(0, 40));
  } finally {
    if (stopped) process.kill(pids[1], "SIGCONT");
    await controller.close();
    await cluster.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});
