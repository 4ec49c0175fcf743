/**
 * One measured task in a fresh process, so peak RSS belongs to the task alone. Prints one JSON line.
 * usage: node dist/bench/ingest-task.js <load|split|cuts> <model.onnx> [outdir]
 */
import { analyzeModel } from "../src/ir/analyze.js";
import { splitModel } from "../src/export/split.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";

const [task, path, out] = process.argv.slice(2);
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const model = await analyzeModel(path);
const tLoad = performance.now();
const result: Record<string, number | string> = { task, model: path, loadMs: tLoad - t0 };
if (task === "split") {
  const t1 = performance.now();
  const { manifest } = splitModel(model, { stages: 4 }, out, { modelPath: path });
  result.splitMs = performance.now() - t1;
  result.stages = manifest.stages.length;
} else if (task === "cuts") {
  const t1 = performance.now();
  const cuts = enumerateCuts(model, choosePartitionOrder(model));
  result.cutsMs = performance.now() - t1;
  result.cuts = cuts.length;
}
result.totalMs = performance.now() - t0;
result.nodes = model.graph.nodes.length;
result.folded = model.folding.folded;
result.foldedMiB = model.folding.foldedBytes / 2 ** 20;
result.baseRssMiB = rssBefore / 2 ** 20;
result.peakRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(`${JSON.stringify(result)}\n`);
