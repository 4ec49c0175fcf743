/**
 * How the partition order shapes cuts: for every zoo model, the bytes crossing cuts summed over all
 * boundaries, the mean and max tensors per cut, and the number of clean (single-tensor) cuts, for the file
 * order and the depth-first order, side by side. Prints one JSON object.
 */
import { analyzeModel } from "../src/ir/analyze.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder, orderWith } from "../src/partition/order.js";
import { buildZooModel, zooNames } from "../src/zoo/index.js";

/**
 * The same model with its nodes written breadth-first (by depth from the inputs), as some exporters write
 * them: the branches of every block interleave in the file.
 */
function interleaved(name: string) {
  const m = buildZooModel(name);
  const g = m.graph!;
  const depth = new Map<string, number>();
  const level = new Map<(typeof g.node)[number], number>();
  for (const n of g.node) {
    const d = 1 + Math.max(-1, ...n.input.map((i) => depth.get(i) ?? -1));
    level.set(n, d);
    for (const o of n.output) depth.set(o, d);
  }
  g.node = [...g.node].sort((a, b) => level.get(a)! - level.get(b)!);
  return m;
}

const rows = [];
for (const base of zooNames().flatMap((n) => [n, `${n} (interleaved)`])) {
  const name = base.split(" ")[0];
  const proto = base.endsWith("(interleaved)") ? interleaved(name) : buildZooModel(name);
  const model = await analyzeModel(proto, { source: base });
  const stats = (strategy: "file" | "depth-first" | "least-live") => {
    const t0 = performance.now();
    const cuts = enumerateCuts(model, orderWith(model.graph, strategy, model.types));
    const ms = performance.now() - t0;
    return {
      totalMiB: cuts.reduce((s, c) => s + c.bytes, 0) / 2 ** 20,
      meanTensors: cuts.reduce((s, c) => s + c.tensors.length, 0) / cuts.length,
      maxTensors: Math.max(...cuts.map((c) => c.tensors.length)),
      cleanCuts: cuts.filter((c) => c.tensors.length === 1).length,
      enumerateMs: ms,
    };
  };
  const file = stats("file");
  const dfs = stats("depth-first");
  const least = stats("least-live");
  rows.push({
    model: base,
    cuts: model.graph.nodes.filter((n) => !n.isConstant).length - 1,
    chosen: choosePartitionOrder(model).strategy,
    file,
    depthFirst: dfs,
    leastLive: least,
    bytesRatioDfsOverFile: dfs.totalMiB / file.totalMiB,
  });
}
process.stdout.write(`${JSON.stringify({ bench: "order", rows }, null, 2)}\n`);
