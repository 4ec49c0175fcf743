import assert from "node:assert/strict";
import { test } from "node:test";
import {
  alive,
  assertAllCorrect,
  chaosCluster,
  chaosModel,
  expectedOutputs,
  streamWithFault,
} from "./helpers/chaos.js";

const COUNT = 240;

for (const [label, victim] of [
  ["first", 0],
  ["middle", 1],
] as const) {
  test(`kill -9 of the ${label} stage's worker mid-run: every request answered once, equal to the whole model`, async () => {
    const { fixture, manifest } = chaosModel();
    const want = await expectedOutputs(fixture, COUNT);
    const { cluster, controller } = await chaosCluster(manifest, fixture.dir);
    const pids = [...cluster.pids];
    try {
      const { outcomes, answers } = await streamWithFault(controller, COUNT, 60, () => {
        process.kill(pids[victim], "SIGKILL");
      });
      assertAllCorrect(outcomes, answers, want);
      assert.equal(controller.recoveries.length, 1, JSON.stringify(controller.recoveries));
      const r = controller.recoveries[0];
      assert.equal(r.device, `w${victim}`);
      assert.match(r.cause, /^(closed|unreachable)$/);
      assert.ok(r.detectedMs >= 0 && r.restoredMs >= r.detectedMs, JSON.stringify(r));
      assert.equal(controller.stats().requestsCompleted, COUNT);
      assert.equal(controller.stats().requestsFailed, 0);
      // The stages of the lost worker run on the two left.
      assert.ok(
        controller.deployed.manifest.stages.every((s) => s.device !== `w${victim}`),
        JSON.stringify(controller.deployed.manifest.stages.map((s) => s.device)),
      );
    } finally {
      await controller.close();
      await cluster.stop();
    }
    for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
  });
}

test("with every worker killed, requests end with an explicit 'no feasible plan remains' error", async () => {
  const { fixture, manifest } = chaosModel();
  const want = await expectedOutputs(fixture, COUNT);
  const { cluster, controller } = await chaosCluster(manifest, fixture.dir);
  const pids = [...cluster.pids];
  try {
    const { outcomes, answers } = await streamWithFault(controller, COUNT, 40, () => {
      for (const pid of pids) process.kill(pid, "SIGKILL");
    });
    answers.forEach((n, i) => {
      assert.equal(n, 1, `request ${i} answered ${n} times`);
    });
    let failed = 0;
    outcomes.forEach((o, i) => {
      if (o.error !== undefined) {
        failed++;
        assert.match(o.error, /^no feasible plan remains: /, `request ${i}`);
      } else assertAllCorrect([o], [1], [want[i]]);
    });
    assert.ok(failed > 0, "requests after the last worker died failed");
    assert.ok(failed <= COUNT - 40, "the requests completed before the kill stay completed");
  } finally {
    await controller.close();
    await cluster.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});
