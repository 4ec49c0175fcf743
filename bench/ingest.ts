/**
 * Benchmark of the foundation and split layers: load + IR + shape inference + costs, 4-stage split, and cut
 * enumeration, for resnet50 (~100 MB) and vgg16 (~550 MB). Each task runs in its own process so its peak RSS
 * can be set against the file size. Prints one JSON object.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveModel } from "../src/onnx/model-io.js";
import { buildZooModel } from "../src/zoo/index.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-bench-ingest-"));
const task = join(import.meta.dirname, "ingest-task.js");
const results: Record<string, unknown>[] = [];
try {
  for (const name of ["resnet50", "vgg16"]) {
    const path = join(dir, `${name}.onnx`);
    saveModel(buildZooModel(name), path);
    const fileMiB = statSync(path).size / 2 ** 20;
    for (const t of ["load", "split", "cuts"]) {
      const out = execFileSync(process.execPath, [task, t, path, join(dir, `${name}-split`)], {
        encoding: "utf8",
      });
      const r = JSON.parse(out) as Record<string, number>;
      results.push({ ...r, model: name, fileMiB, peakOverFile: r.peakRssMiB / fileMiB });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ bench: "ingest", results }, null, 2)}\n`);
