import { analyzeModel } from "../src/ir/analyze.js";
import { buildZooModel } from "../src/zoo/index.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildProblem, stageTime } from "../src/partition/problem.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { loadCluster } from "../src/cluster/load.js";
import { seededRandom } from "../src/onnx/prng.js";
const cluster = loadCluster("examples/clusters/edge-mix.yaml");
for (const name of ["resnet18", "googlenet", "efficientnet_b0", "vit_tiny"]) {
  const model = await analyzeModel(buildZooModel(name), { source: name });
  const order = choosePartitionOrder(model);
  const cost = costModelFor(model, cluster);
  const t = performance.now();
  const p = buildProblem(model, order, cluster, cost);
  const bt = performance.now() - t;
  const cuts = enumerateCuts(model, order);
  let diff = 0;
  for (const c of cuts) if (c.bytes !== p.cutBytes[c.index]) diff++;
  const rnd = seededRandom(1);
  let maxErr = 0;
  for (let k = 0; k < 300; k++) {
    const d = Math.floor(rnd() * cluster.devices.length);
    const i = Math.floor(rnd() * p.n);
    const j = i + 1 + Math.floor(rnd() * (p.n - i));
    const want = cost.segmentLatency(cluster.devices[d], order.nodes.slice(i, j));
    const got = stageTime(p, d, i, j);
    maxErr = Math.max(maxErr, Math.abs(got - want) / want);
  }
  console.log(name, p.n, "build ms", bt.toFixed(0), "cut bytes differing", diff, "max rel err", maxErr);
}
