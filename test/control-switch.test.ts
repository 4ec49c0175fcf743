import assert from "node:assert/strict";
import { test } from "node:test";
import type { Manifest } from "../src/export/manifest.js";
import type { ReplanEvent } from "../src/runtime/control/service.js";
import {
  alive,
  assertAllCorrect,
  chaosCluster,
  chaosModel,
  expectedOutputs,
  streamWithFault,
} from "./helpers/chaos.js";

/**
 * A switch deploys the new split beside the running one and cuts over once it is ready: real workers (three
 * local processes, each holding both deployments for a while), requests streaming throughout.
 */

const COUNT = 240;

/** The same stages, each on the next worker (w0 > w1 > w2 becomes w1 > w2 > w0): every stage moves. */
function rotated(m: Manifest): Manifest {
  return { ...m, stages: m.stages.map((s, i) => ({ ...s, device: `w${(i + 1) % 3}` })) };
}

test("switchTo mid-stream: new requests go to the new split once it is ready, none lost or answered twice", async () => {
  const { fixture, manifest } = chaosModel();
  const want = await expectedOutputs(fixture, COUNT);
  const { cluster, controller } = await chaosCluster(manifest, fixture.dir);
  const pids = [...cluster.pids];
  let event: ReplanEvent | undefined;
  let completedAtSwitch = 0;
  try {
    const { outcomes, answers } = await streamWithFault(controller, COUNT, 60, async () => {
      const t = controller.switchTo({ manifest: rotated(manifest), dir: fixture.dir }, "test: rotate");
      completedAtSwitch = controller.stats().requestsCompleted;
      event = await t;
    });
    assertAllCorrect(outcomes, answers, want);
    assert.ok(event, "the switch resolved");
    assert.equal(event.epoch, 2);
    assert.equal(controller.currentEpoch, 2);
    assert.deepEqual(
      controller.deployed.manifest.stages.map((s) => s.device),
      ["w1", "w2", "w0"],
    );
    assert.ok(event.pauseMs !== undefined && event.pauseMs >= 0 && event.pauseMs <= event.switchMs + 1e-6);
    assert.equal(controller.stats().requestsFailed, 0);
    assert.equal(controller.stats().requestsCompleted, COUNT);
    assert.ok(completedAtSwitch >= 60 && completedAtSwitch < COUNT, `${completedAtSwitch}`);
    assert.equal(controller.replans.length, 1);
  } finally {
    await controller.close();
    await cluster.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});

test("a switch to a split that cannot be deployed rejects, and the running split keeps serving", async () => {
  const { fixture, manifest } = chaosModel();
  const want = await expectedOutputs(fixture, COUNT);
  const { cluster, controller } = await chaosCluster(manifest, fixture.dir);
  const pids = [...cluster.pids];
  const bad: Manifest = {
    ...manifest,
    stages: manifest.stages.map((s, i) => (i === 1 ? { ...s, sha256: "0".repeat(64) } : s)),
  };
  let failure: unknown;
  try {
    const { outcomes, answers } = await streamWithFault(controller, COUNT, 60, async () => {
      failure = await controller.switchTo({ manifest: bad, dir: fixture.dir }, "test: bad").then(
        () => undefined,
        (err) => err,
      );
    });
    assertAllCorrect(outcomes, answers, want);
    assert.ok(failure instanceof Error, "the switch rejected");
    assert.equal(controller.currentEpoch, 1);
    assert.equal(controller.replans.length, 0);
    assert.deepEqual(
      controller.deployed.manifest.stages.map((s) => s.device),
      ["w0", "w1", "w2"],
    );
  } finally {
    await controller.close();
    await cluster.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});
