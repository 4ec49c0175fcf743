import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { seededRandom } from "../src/onnx/prng.js";
import { mergeConstraints, parseConstraints, resolveConstraints } from "../src/partition/constraints.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { evaluate, evaluateAssignment } from "../src/partition/evaluate.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildProblem, stageTime } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";
import { buildZooModel } from "../src/zoo/index.js";

/** Four devices: two identical Pis (interchangeable on a shared medium), a laptop, a phone. */
const CLUSTER = {
  name: "test-mix",
  inputDevice: "laptop",
  outputDevice: "laptop",
  devices: [
    {
      name: "laptop",
      kind: "cpu",
      throughput: "100 GMAC/s",
      memoryBandwidth: "20GB/s",
      memory: "8GiB",
      idlePower: "8W",
      activePower: "30W",
    },
    {
      name: "pi-a",
      kind: "cpu",
      throughput: "7 GMAC/s",
      memoryBandwidth: "4GB/s",
      memory: "300MiB",
      idlePower: "2.7W",
      activePower: "6.4W",
    },
    {
      name: "pi-b",
      kind: "cpu",
      throughput: "7 GMAC/s",
      memoryBandwidth: "4GB/s",
      memory: "300MiB",
      idlePower: "2.7W",
      activePower: "6.4W",
    },
    {
      name: "phone",
      kind: "cpu",
      throughput: "40 GMAC/s",
      memoryBandwidth: "15GB/s",
      memory: "2GiB",
      idlePower: "0.5W",
      activePower: "3W",
      coreClusters: [
        { name: "big", cores: 4, throughput: "30 GMAC/s" },
        { name: "little", cores: 4, throughput: "20 GMAC/s" },
      ],
    },
  ],
  links: [
    {
      devices: ["laptop", "pi-a", "pi-b", "phone"],
      kind: "wifi",
      bandwidth: "200Mbit/s",
      latency: "2ms",
      energyPerBit: "50nJ/bit",
    },
  ],
};

test("problem of a zoo model: boundary bytes equal the cuts, stage times equal segmentLatency, identical devices grouped", async () => {
  const model = await analyzeModel(buildZooModel("resnet18"), { source: "resnet18" });
  const cluster = parseCluster(CLUSTER, "test-mix");
  const order = choosePartitionOrder(model);
  const cost = costModelFor(model, cluster);
  const p = buildProblem(model, order, cluster, cost);
  assert.equal(p.n, order.nodes.length);
  for (const c of enumerateCuts(model, order)) assert.equal(p.cutBytes[c.index], c.bytes, `cut ${c.index}`);
  assert.equal(p.cutBytes[0], 3 * 224 * 224 * 4, "input transfer: the image");
  assert.equal(p.cutBytes[p.n], 1000 * 4, "output transfer: the logits");
  const rnd = seededRandom(3);
  for (let k = 0; k < 100; k++) {
    const d = Math.floor(rnd() * 4);
    const i = Math.floor(rnd() * p.n);
    const j = i + 1 + Math.floor(rnd() * (p.n - i));
    const want = cost.segmentLatency(cluster.devices[d], order.nodes.slice(i, j));
    assert.ok(Math.abs(stageTime(p, d, i, j) - want) <= 1e-9 * want, `segment [${i},${j}) on ${d}`);
    const fits = j <= p.memEnd[d][i];
    assert.equal(
      fits,
      cost.segmentMemory(cluster.devices[d], order.nodes.slice(i, j)) <= cluster.devices[d].memory,
    );
  }
  const types = p.devices.map((d) => d.type);
  assert.equal(types[1], types[2], "the two Pis are interchangeable");
  assert.notEqual(types[0], types[1]);
  assert.notEqual(types[3], types[1]);
  // Contiguous candidates price the same through the general (assignment) evaluator.
  const rc = resolveConstraints(p, {});
  const cand = {
    stages: [
      { device: 0, start: 0, end: 30 },
      { device: 3, start: 30, end: p.n },
    ],
  };
  const a = evaluate(p, cand, rc);
  const b = evaluateAssignment(
    p,
    { stageOf: Int32Array.from({ length: p.n }, (_, q) => (q < 30 ? 0 : 1)), devices: [0, 3] },
    rc,
  );
  for (const k of ["latency", "bottleneck", "energy"] as const)
    assert.ok(Math.abs(a[k] - b[k]) <= 1e-12 * a[k], k);
});

test("contiguous and assignment evaluators agree on random problems", () => {
  for (let seed = 1; seed <= 100; seed++) {
    const p = randomProblem(seed, { devices: 3, n: 8 });
    const rc = resolveConstraints(p, {});
    const cand = {
      stages: [
        { device: 0, start: 0, end: 3 },
        { device: 1, start: 3, end: 5 },
        { device: 2, start: 5, end: 8 },
      ],
    };
    const stageOf = Int32Array.from({ length: 8 }, (_, q) => (q < 3 ? 0 : q < 5 ? 1 : 2));
    const a = evaluate(p, cand, rc);
    const b = evaluateAssignment(p, { stageOf, devices: [0, 1, 2] }, rc);
    assert.deepEqual(
      a.transfers.map((t) => t.bytes),
      b.transfers.map((t) => t.bytes),
      `seed ${seed}`,
    );
    assert.ok(
      Math.abs(a.latency - b.latency) <= 1e-9 * Math.max(1, a.latency) || a.latency === b.latency,
      `seed ${seed}`,
    );
  }
});

test("constraints from a cluster file and flags", () => {
  const c = parseConstraints(
    { maxLatency: "20ms", minFps: 30, maxEnergy: "5mJ", maxLinkBytes: "1MiB", devices: "a, b" },
    "c.yaml",
  );
  assert.deepEqual(c, {
    maxLatency: 0.02,
    minThroughput: 30,
    maxEnergy: 0.005,
    maxLinkBytes: 2 ** 20,
    devices: ["a", "b"],
  });
  assert.throws(
    () => parseConstraints({ maxLatncy: "20ms" }, "c.yaml"),
    /c\.yaml: constraints\.maxLatncy: unknown constraint/,
  );
  assert.throws(
    () => parseConstraints({ maxLatency: "fast" }, "c.yaml"),
    /constraints\.maxLatency: expected a time/,
  );
  assert.deepEqual(mergeConstraints(c, { maxLatency: 0.01 }).maxLatency, 0.01);
  const p = randomProblem(1, { devices: 3 });
  assert.throws(() => resolveConstraints(p, { devices: ["nope"] }), /devices: unknown device 'nope'/);
  const rc = resolveConstraints(p, { deviceOrder: ["dev2", "dev0"] });
  assert.deepEqual([...rc.allowed], [1, 0, 1]);
});
