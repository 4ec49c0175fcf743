import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCluster } from "../src/cluster/load.js";
import { analyticTimes } from "../src/cost/cost-analytic.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import type { CostModel } from "../src/cost/cost-model.js";
import { segmentTime } from "../src/cost/node-times.js";
import { nodeMask, type SegmentMemory, segmentMemory } from "../src/cost/segment.js";
import { segmentTimeSweeps } from "../src/cost/segment-sweep.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { typeBytes } from "../src/ir/graph.js";
import { seededRandom } from "../src/onnx/prng.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildProblem } from "../src/partition/problem.js";
import { buildZooModel } from "../src/zoo/index.js";
import { fleetFile } from "./helpers/fleet.js";

const near = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * Math.max(1e-3, Math.abs(a), Math.abs(b));

test("suffix and prefix sweeps equal segmentTime with fusion groups, blocked layouts and per-byte overheads", async () => {
  for (const name of ["googlenet", "efficientnet_b0", "vit_tiny"]) {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    const cluster = parseCluster(fleetFile(1, { variant: "grouped" }), "one");
    const base = analyticTimes(model, cluster.devices[0]);
    const rnd = seededRandom(name.length);
    // Random fusion: a node joins the kernel of its first input's producer when that is an anchor.
    const { graph } = model;
    const anchorOf = base.anchorOf.slice();
    const latency = base.latency.slice();
    const standalone = base.standalone.slice();
    let fused = 0;
    for (const node of graph.nodes) {
      if (node.isConstant || rnd() > 0.4) continue;
      const p = graph.values.get(node.inputs[0] ?? "")?.producer;
      if (!p || p.isConstant || anchorOf[p.index] !== p.index) continue;
      anchorOf[node.index] = p.index;
      standalone[node.index] = latency[node.index] * (1 + rnd());
      latency[node.index] = 0;
      fused++;
    }
    const blocked = Uint8Array.from(anchorOf, (a, i) => (a === i && rnd() < 0.3 ? 1 : 0));
    const times = {
      latency,
      standalone,
      anchorOf,
      blocked,
      overhead: { fixed: 2e-5, perByteIn: 3e-10, perByteOut: 5e-10, perByteLayout: 7e-10 },
    };
    assert.ok(fused > 10, `${name}: only ${fused} fused nodes`);
    const order = choosePartitionOrder(model).nodes;
    // The planner's order, and a shuffled one (segments that are not convex in the graph).
    const shuffled = [...order].sort(() => rnd() - 0.5);
    for (const nodes of [order, shuffled]) {
      const n = nodes.length;
      const s = segmentTimeSweeps(model, times, nodes);
      assert.equal(s.suffix[n], 0);
      assert.equal(s.prefix[0], 0);
      for (let i = 0; i < n; i++) {
        const want = segmentTime(model, times, nodes.slice(i));
        assert.ok(near(s.suffix[i], want), `${name}: suffix ${i}: ${s.suffix[i]} vs ${want}`);
      }
      for (let j = 1; j <= n; j++) {
        const want = segmentTime(model, times, nodes.slice(0, j));
        assert.ok(near(s.prefix[j], want), `${name}: prefix ${j}: ${s.prefix[j]} vs ${want}`);
      }
    }
  }
});

/** The cost model without its optional fast paths: buildProblem then takes the straightforward one. */
function plainCost(c: CostModel): CostModel {
  return {
    nodeLatencies: (d) => c.nodeLatencies(d),
    segmentLatency: (d, nodes) => c.segmentLatency(d, nodes),
    segmentEnergy: (d, nodes) => c.segmentEnergy(d, nodes),
    segmentMemory: (d, nodes) => c.segmentMemory(d, nodes),
    transfer: (l, bytes) => c.transfer(l, bytes),
  };
}

test("buildProblem's fast path gives the straightforward path's problem on zoo models and fleets", async () => {
  for (const [name, variant, size] of [
    ["resnet18", "distinct", 8],
    ["googlenet", "grouped", 12],
    ["mobilenet_v3_small", "distinct", 5],
  ] as const) {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    const file = fleetFile(size, { variant });
    // Small memories on some devices, so that memory fits bind.
    file.devices.forEach((d, i) => {
      if (i % 3 === 1) (d as { memory: string }).memory = `${70 + 4 * i}MiB`;
    });
    const cluster = parseCluster(file, `${variant}-${size}`);
    const order = choosePartitionOrder(model);
    const cost = costModelFor(model, cluster);
    const fast = buildProblem(model, order, cluster, cost);
    const slow = buildProblem(model, order, cluster, plainCost(cost));
    const where = `${name} on ${cluster.name}`;
    assert.deepEqual(
      fast.devices.map((d) => d.type),
      slow.devices.map((d) => d.type),
      `${where}: types`,
    );
    let binding = 0;
    for (let d = 0; d < cluster.devices.length; d++) {
      assert.deepEqual(fast.prefix[d], slow.prefix[d], `${where}: prefix of d${d}`);
      assert.deepEqual(fast.memEnd[d], slow.memEnd[d], `${where}: memEnd of d${d}`);
      if (fast.memEnd[d].some((e) => e < fast.n)) binding++;
      for (let i = 0; i <= fast.n; i++) {
        assert.ok(near(fast.startCost[d][i], slow.startCost[d][i]), `${where}: startCost[${d}][${i}]`);
        assert.ok(near(fast.endCost[d][i], slow.endCost[d][i]), `${where}: endCost[${d}][${i}]`);
      }
    }
    assert.ok(binding > 0, `${where}: no memory fit binds`);
    const rnd = seededRandom(size);
    for (let k = 0; k < 50; k++) {
      const d = Math.floor(rnd() * cluster.devices.length);
      const i = Math.floor(rnd() * fast.n);
      const j = i + 1 + Math.floor(rnd() * (fast.n - i));
      assert.equal(fast.memory(d, i, j), slow.memory(d, i, j), `${where}: memory of [${i}, ${j}) on d${d}`);
    }
  }
});

/** segmentMemory as it was written first, over sets of tensor names: the oracle for the indexed one. */
function referenceMemory(model: AnalyzedModel, nodes: readonly number[]): SegmentMemory {
  const { graph, types } = model;
  const order = [...nodes].sort((a, b) => a - b);
  const mask = nodeMask(model, order);
  const uses = new Map<string, number>();
  const weightSeen = new Set<string>();
  let weights = 0;
  let live = 0;
  for (const i of order) {
    const node = graph.nodes[i];
    if (node.isConstant) {
      for (const t of node.outputs) {
        if (t !== "" && !weightSeen.has(t)) {
          weightSeen.add(t);
          weights += typeBytes(types.get(t));
        }
      }
      continue;
    }
    for (const t of new Set([...node.inputs, ...node.implicitInputs])) {
      if (t === "") continue;
      if (graph.isWeight(t)) {
        if (!weightSeen.has(t)) {
          weightSeen.add(t);
          weights += typeBytes(types.get(t));
        }
        continue;
      }
      if (!uses.has(t)) {
        const p = graph.values.get(t)?.producer;
        if (!p || !mask[p.index]) live += typeBytes(types.get(t)); // read from outside: live from the start
      }
      uses.set(t, (uses.get(t) ?? 0) + 1);
    }
  }
  // Produced here and handed on (to a later stage or the caller): live to the end.
  const keep = (t: string) => {
    const v = graph.values.get(t);
    if (!v?.producer || !mask[v.producer.index]) return false;
    return v.isOutput || v.consumers.some((c) => !mask[c.index]);
  };
  let peak = live;
  for (const i of order) {
    const node = graph.nodes[i];
    if (node.isConstant) continue;
    for (const t of node.outputs) if (t !== "") live += typeBytes(types.get(t));
    peak = Math.max(peak, live);
    for (const t of new Set([...node.inputs, ...node.implicitInputs])) {
      const left = uses.get(t);
      if (left === undefined) continue;
      uses.set(t, left - 1);
      if (left === 1 && !keep(t)) live -= typeBytes(types.get(t));
    }
    // Outputs nobody in the segment reads and nobody outside needs die at once.
    for (const t of node.outputs) if (t !== "" && !uses.has(t) && !keep(t)) live -= typeBytes(types.get(t));
  }
  return { weights, activations: peak };
}

test("segmentMemory over the integer index equals the set-based reference on zoo models", async () => {
  for (const name of ["googlenet", "ssdlite_fpn", "bert_mini", "unet"]) {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    const order = choosePartitionOrder(model).nodes;
    const rnd = seededRandom(name.length * 7);
    const all = model.graph.nodes.map((nd) => nd.index);
    const cases: number[][] = [all, order.slice(0, 1), order.slice(-1)];
    for (let k = 0; k < 60; k++) {
      const i = Math.floor(rnd() * order.length);
      const j = i + 1 + Math.floor(rnd() * (order.length - i));
      cases.push(order.slice(i, j));
      // Any set of nodes, Constant nodes included (setCost prices non-contiguous stages).
      cases.push(all.filter(() => rnd() < 0.3));
    }
    for (const nodes of cases) {
      assert.deepEqual(
        segmentMemory(model, nodes),
        referenceMemory(model, nodes),
        `${name}: ${nodes.length} nodes`,
      );
    }
  }
});
