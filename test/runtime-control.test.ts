import assert from "node:assert/strict";
import { test } from "node:test";
import type { Manifest, ManifestStage } from "../src/export/manifest.js";
import { devicesOf } from "../src/runtime/control/service.js";
import { reassignStages } from "../src/runtime/control/reassign.js";
import { StageCache } from "../src/runtime/worker/stage-cache.js";

function manifestOf(stages: Array<{ device?: string; devices?: string[]; macs: number }>): Manifest {
  return {
    version: 1,
    model: "m.onnx",
    inputs: [],
    outputs: [],
    tensors: {},
    stages: stages.map(
      (s, i): ManifestStage => ({
        index: i,
        file: `stage_${i}.onnx`,
        inputs: [],
        outputs: [],
        params: 0,
        bytesIn: 0,
        bytesOut: 0,
        nodes: 1,
        sha256: "0".repeat(64),
        ...s,
      }),
    ),
  };
}

test("reassignStages moves a lost device's stages to the least loaded device left, keeps the rest", () => {
  const m = manifestOf([
    { device: "a", macs: 10 },
    { device: "b", macs: 30 },
    { device: "c", macs: 5 },
  ]);
  const cases: Array<[string[], string[]]> = [
    [
      ["a", "b", "c"],
      ["a", "b", "c"],
    ],
    [
      ["a", "c"],
      ["a", "c", "c"],
    ], // b's 30 go to c (5), not a (10)
    [
      ["b", "c"],
      ["c", "b", "c"],
    ],
    [["a"], ["a", "a", "a"]],
  ];
  for (const [alive, want] of cases)
    assert.deepEqual(
      reassignStages(m, alive).stages.map((s) => s.device),
      want,
      `alive ${alive}`,
    );
  // The files do not change: the workers' caches hold them.
  assert.deepEqual(
    reassignStages(m, ["a"]).stages.map((s) => s.file),
    m.stages.map((s) => s.file),
  );
  assert.throws(() => reassignStages(m, []), /^RuntimeFault: no feasible plan remains: every device/);
});

test("reassignStages drops lost replicas and keeps a group's live ones", () => {
  const m = manifestOf([
    { device: "a", macs: 1 },
    { device: "b", devices: ["b", "c"], macs: 4 },
  ]);
  const r = reassignStages(m, ["a", "c"]);
  assert.deepEqual(
    r.stages.map((s) => [s.device, s.devices]),
    [
      ["a", undefined],
      ["c", undefined],
    ],
  );
  assert.deepEqual(devicesOf(m), ["a", "b", "c"]);
  assert.deepEqual(devicesOf(reassignStages(m, ["b", "c"])), ["b", "c"]);
});

test("the stage cache keeps the most recently used files within its entry and byte bounds", () => {
  const c = new StageCache(2, 100);
  const bytes = (n: number) => new Uint8Array(n);
  c.put("a", bytes(40));
  c.put("b", bytes(40));
  assert.ok(c.get("a"));
  c.put("c", bytes(40)); // over 2 entries: b (least recently used) goes
  assert.equal(c.get("b"), undefined);
  assert.ok(c.get("a") && c.get("c"));
  c.put("d", bytes(90)); // over 100 bytes: a and c go
  assert.deepEqual(c.size, { entries: 1, bytes: 90 });
  c.put("e", bytes(101)); // larger than the whole cache: not kept, nothing evicted
  assert.equal(c.get("e"), undefined);
  assert.ok(c.get("d"));
});
