import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_MAX_FRAME_BYTES } from "../src/runtime/transport/frame.js";
import type { RunSplitResult } from "../src/runtime/coordinator/run-split.js";
import { cleave } from "./helpers/cli.js";

// One run of a 528 MiB model (about a minute here): its stages do not fit in one frame.
test("cleave run zoo:vgg16 --stages 4 deploys stages larger than a frame on local workers; outputs equal the whole model", () => {
  const r = cleave(["run", "zoo:vgg16", "--stages", "4", "--requests", "2", "--json"], {
    timeoutMs: 600_000,
  });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as RunSplitResult;
  // The shipped local cluster has two devices: consecutive stages share one.
  assert.deepEqual(result.devices, ["core0", "core0", "core1", "core1"]);
  assert.equal(result.report.completed, 2);
  assert.equal(result.report.failed, 0);
  assert.ok(result.maxRelativeDiff <= 1e-5, `outputs differ by ${result.maxRelativeDiff}`);
  const largest = Math.max(...result.stageLoads.map((l) => l.bytes));
  assert.ok(largest > DEFAULT_MAX_FRAME_BYTES, `the largest stage is ${largest} bytes`);
  for (const l of result.stageLoads) assert.ok(l.chunks >= Math.ceil(l.bytes / (4 * 1024 * 1024)));
});
