/**
 * A stage over protobuf's 2 GB limit, end to end: a two-layer MLP with 2 GiB of weights is split as one stage
 * (written with external data automatically), deployed on a local worker and run; its output is compared with
 * the whole model opened from a file with external data. Prints JSON: the stage files' sizes, the deploy
 * (bytes, chunks, seconds, MiB/s, receive and session seconds) and the largest output difference. Needs
 * ~7 GiB of memory and ~4 GiB of temp disk.
 *
 * Usage: node dist/bench/deploy-external.js
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitModel } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { saveModel } from "../src/onnx/model-io.js";
import { createSession, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";

const MiB = 1024 * 1024;
const b = new GraphBuilder("mlp2g", { seed: 1 });
const x = b.input("x", "float32", [1, 8192]);
const small = { uniform: [-0.01, 0.01] as [number, number] };
const h = b.node("Relu", [b.node("MatMul", [x, b.weight("w1", [8192, 32768], small)])]);
const y = b.node("MatMul", [h, b.weight("w2", [32768, 8192], small)]);
b.output(y, "float32", [1, 8192]);
const proto = b.toModel();
const model = await analyzeModel(proto, { source: "mlp2g" });
const dir = mkdtempSync(join(tmpdir(), "cleave-bench-external-"));
const workers = await startLocalWorkers([{ name: "big" }]);
try {
  const t0 = performance.now();
  const { manifest } = splitModel(model, { stages: 1 }, join(dir, "split"), { modelPath: "mlp2g" });
  const writeS = (performance.now() - t0) / 1000;
  const wholePath = join(dir, "whole.onnx");
  saveModel(proto, wholePath, { externalDataThreshold: 1024 });
  const p = await deploy(join(dir, "split"), workers.workers, { token: workers.token, timeoutMs: 300_000 });
  const [load] = p.stageLoads;
  const feeds = { x: randomTensor("float32", [1, 8192], 3) };
  const got = (await p.infer(feeds))[y].data as Float32Array;
  await p.close();
  const want = (await (await createSession(wholePath)).run(feeds))[y].data as Float32Array;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  const s = manifest.stages[0];
  console.log(
    JSON.stringify(
      {
        stageFileBytes: s.fileBytes,
        dataBytes: s.data?.bytes,
        writeS,
        deploy: {
          bytes: load.bytes,
          chunks: load.chunks,
          seconds: load.deployMs / 1000,
          mibPerS: load.bytes / MiB / (load.deployMs / 1000),
          receiveS: load.receiveMs / 1000,
          sessionS: (load.loadMs - load.receiveMs) / 1000,
        },
        maxAbsDiff: diff,
        outputScale: scale,
      },
      null,
      2,
    ),
  );
} finally {
  await workers.stop();
  rmSync(dir, { recursive: true, force: true });
}
