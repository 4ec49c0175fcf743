/**
 * Stage-deploy benchmark: vgg16 (528 MiB of weights) split into 4 MAC-balanced stages, deployed on two local
 * worker processes (stages 0-1 on one, 2-3 on the other, as `cleave run zoo:vgg16 --stages 4` does) with
 * stage models streamed in chunks of each size in turn, for several rounds. Prints JSON: per stage its bytes,
 * chunks, the coordinator's time from announcing it to `loaded` (seconds and MiB/s), and the worker's time
 * receiving and verifying the bytes and opening the session; per round the whole deploy's wall time.
 *
 * Usage: node dist/bench/deploy.js [--rounds R] [--chunks 1,4,16] (chunk sizes in MiB)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { splitModel } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import type { StageLoad } from "../src/runtime/coordinator/pipeline.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "2" },
    chunks: { type: "string", default: "1,4,16" },
  },
});
const rounds = Number(values.rounds);
const chunkMiB = values.chunks.split(",").map(Number);
const MiB = 1024 * 1024;

const t0 = performance.now();
const model = await analyzeModel(buildZooModel("vgg16"), { source: "vgg16" });
const dir = mkdtempSync(join(tmpdir(), "cleave-bench-deploy-"));
const split = join(dir, "split");
const devices = ["w0", "w0", "w1", "w1"];
const { manifest } = splitModel(model, { stages: 4 }, split, { modelPath: "zoo:vgg16", devices });
const prepareS = (performance.now() - t0) / 1000;
const workers = await startLocalWorkers([{ name: "w0" }, { name: "w1" }]);

interface Row {
  chunkMiB: number;
  round: number;
  wallS: number;
  stages: Array<{
    stage: number;
    bytes: number;
    chunks: number;
    seconds: number;
    mibPerS: number;
    receiveS: number;
    sessionS: number;
  }>;
}
const rows: Row[] = [];
try {
  for (let r = 0; r < rounds; r++) {
    for (const c of chunkMiB) {
      const start = performance.now();
      const p = await deploy(split, workers.workers, {
        token: workers.token,
        chunkBytes: c * MiB,
        timeoutMs: 120_000,
      });
      const wallS = (performance.now() - start) / 1000;
      const loads: StageLoad[] = [...p.stageLoads];
      await p.close();
      rows.push({
        chunkMiB: c,
        round: r,
        wallS,
        stages: loads.map((l) => ({
          stage: l.stage,
          bytes: l.bytes,
          chunks: l.chunks,
          seconds: l.deployMs / 1000,
          mibPerS: l.bytes / MiB / (l.deployMs / 1000),
          receiveS: l.receiveMs / 1000,
          sessionS: (l.loadMs - l.receiveMs) / 1000,
        })),
      });
    }
  }
} finally {
  await workers.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  JSON.stringify(
    {
      model: "vgg16",
      stageBytes: manifest.stages.map((s) => s.fileBytes),
      buildAndSplitS: prepareS,
      rounds: rows,
    },
    null,
    2,
  ),
);
