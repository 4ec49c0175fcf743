import assert from "node:assert/strict";
import type { Manifest } from "../../src/export/manifest.js";
import { createSession, randomTensor } from "../../src/onnx/ort.js";
import { type LocalCluster, startLocalWorkers } from "../../src/runtime/coordinator/local-cluster.js";
import type { Tensors } from "../../src/runtime/coordinator/pipeline.js";
import { type Controller, startController } from "../../src/runtime/control/service.js";
import { reassignStages } from "../../src/runtime/control/reassign.js";
import { branchySpec, type Fixture, writeFixture } from "../runtime-fixture.js";
import { assertOutputsClose } from "./compare.js";

/** Width of the chaos model's tensors: MatMuls of 384 x 384, so a run takes a little time but not much. */
export const WIDTH = 384;

/** The 3-stage branchy fixture with stage i on device `w<i>`. */
export function chaosModel(): { fixture: Fixture; manifest: Manifest } {
  const fixture = writeFixture(branchySpec(WIDTH));
  const manifest: Manifest = {
    ...fixture.manifest,
    stages: fixture.manifest.stages.map((s, i) => ({ ...s, device: `w${i}`, macs: 1 })),
  };
  return { fixture, manifest };
}

/** Feeds of request i: distinct seeded inputs, so a mixed-up answer shows. */
export function feedsOf(i: number): Tensors {
  return { x: randomTensor("float32", [1, WIDTH], 1000 + i) };
}

/** The whole model's outputs for each request, run in this process. */
export async function expectedOutputs(fixture: Fixture, count: number): Promise<Tensors[]> {
  const s = await createSession(fixture.whole);
  try {
    const out: Tensors[] = [];
    for (let i = 0; i < count; i++) out.push((await s.run(feedsOf(i))) as Tensors);
    return out;
  } finally {
    await s.release();
  }
}

/** Three local worker processes w0..w2, a controller over them with the default re-plan. */
export async function chaosCluster(
  manifest: Manifest,
  dir: string,
  opts: { heartbeatMs?: number; deadlineMs?: number; recover?: boolean } = {},
): Promise<{ cluster: LocalCluster; controller: Controller }> {
  const cluster = await startLocalWorkers([{ name: "w0" }, { name: "w1" }, { name: "w2" }]);
  try {
    const controller = await startController({ manifest, dir }, cluster.workers, {
      deploy: { token: cluster.token, maxInFlight: 6, timeoutMs: opts.deadlineMs ?? 20000 },
      heartbeatMs: opts.heartbeatMs ?? 1000,
      rejoinBackoff: { initialMs: 100, maxMs: 500 },
      ...(opts.recover !== undefined ? { recover: opts.recover } : {}),
      replan: async (alive) => ({ manifest: reassignStages(manifest, alive), dir }),
    });
    return { cluster, controller };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/**
 * Streams `count` requests through the controller with 6 in flight, calling `fault` once `at` of them
 * completed; returns every request's outcome by index, and how many times each index was answered.
 */
export async function streamWithFault(
  controller: Controller,
  count: number,
  at: number,
  fault: () => void | Promise<void>,
  feeds: (i: number) => Tensors = feedsOf,
): Promise<{ outcomes: Array<{ out?: Tensors; error?: string }>; answers: number[] }> {
  const outcomes: Array<{ out?: Tensors; error?: string }> = new Array(count);
  const answers = new Array(count).fill(0);
  let next = 0;
  let done = 0;
  let faulted: Promise<void> | undefined;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        const out = await controller.infer(feeds(i));
        answers[i]++;
        outcomes[i] = { out };
      } catch (err) {
        answers[i]++;
        outcomes[i] = { error: (err as Error).message };
      }
      if (++done === at) faulted = Promise.resolve(fault());
    }
  };
  await Promise.all(Array.from({ length: 6 }, lane));
  await faulted;
  return { outcomes, answers };
}

/** Every request answered exactly once, with the whole model's outputs. */
export function assertAllCorrect(
  outcomes: Array<{ out?: Tensors; error?: string }>,
  answers: number[],
  want: Tensors[],
): void {
  answers.forEach((n, i) => {
    assert.equal(n, 1, `request ${i} answered ${n} times`);
  });
  outcomes.forEach((o, i) => {
    assert.equal(o.error, undefined, `request ${i} failed: ${o.error}`);
    assertOutputsClose(o.out!, want[i], `request ${i}`);
  });
}

/** True while process `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `cond` holds, polling every 20 ms, at most `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
