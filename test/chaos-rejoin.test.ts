import assert from "node:assert/strict";
import { test } from "node:test";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import {
  alive,
  assertAllCorrect,
  chaosCluster,
  chaosModel,
  expectedOutputs,
  streamWithFault,
  until,
} from "./helpers/chaos.js";

const COUNT = 200;

test("a worker killed and restarted at its endpoint is found again and the plan uses it; no request lost or answered twice", async () => {
  const { fixture, manifest } = chaosModel();
  const want = await expectedOutputs(fixture, COUNT);
  const { cluster, controller } = await chaosCluster(manifest, fixture.dir);
  const pids = [...cluster.pids];
  let restarted: LocalCluster | undefined;
  try {
    const endpoint = cluster.workers[2].endpoint;
    const port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    const { outcomes, answers } = await streamWithFault(controller, COUNT, 50, async () => {
      process.kill(pids[2], "SIGKILL");
      await until(() => controller.recoveries.length > 0, 20000, "the loss of w2 is recovered");
      restarted = await startLocalWorkers([{ name: "w2", port }], { token: cluster.token });
    });
    assertAllCorrect(outcomes, answers, want);
    assert.equal(restarted?.workers[0].endpoint, endpoint, "the new worker listens at the old endpoint");
    await until(() => controller.replans.length > 0, 20000, "w2 rejoins");
    const back = controller.replans[0];
    assert.equal(back.reason, "rejoin w2");
    assert.deepEqual(
      controller.deployed.manifest.stages.map((s) => s.device),
      ["w0", "w1", "w2"],
    );
    // Only the new process lacked its stage: the others had theirs cached.
    const stage2 = manifest.stages[2];
    const loads = controller.pipeline.stageLoads;
    assert.ok(back.shippedBytes > 0, "the restarted worker got its stage");
    assert.ok(
      loads.filter((l) => l.bytes > 0).every((l) => l.worker === "w2" && l.stage === stage2.index),
      JSON.stringify(loads),
    );
    const more = await streamWithFault(controller, 40, 41, () => {});
    assertAllCorrect(more.outcomes, more.answers, want.slice(0, 40));
    assert.equal(controller.recoveries[0].device, "w2");
  } finally {
    await controller.close();
    await cluster.stop();
    await restarted?.stop();
  }
  for (const pid of [...pids, ...(restarted?.pids ?? [])])
    assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});
