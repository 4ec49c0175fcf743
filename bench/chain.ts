/** Helper of the pipeline benchmarks: a synthetic chain model, split and written as cleave's export would. */
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../src/export/manifest.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";

/** Size of a chain: MatMul+Relu layers of [batch, width] x [width, width]. */
export interface ChainSize {
  layers: number;
  width: number;
  batch: number;
}

/** Writes a split of `layers` MatMul+Relu layers into `stages` equal stages (manifest included); returns the folder. */
export function writeChain(stages: number, size: ChainSize): string {
  const { layers: L, width: W, batch: B } = size;
  const dir = mkdtempSync(join(tmpdir(), "cleave-bench-"));
  const per = L / stages;
  const name = (i: number) => (i === 0 ? "x" : i === L ? "y" : `h${i}`);
  const spec = (n: string) => ({ name: n, dtype: "float32" as const, shape: [B, W] });
  const st = Array.from({ length: stages }, (_, s) => {
    const g = new GraphBuilder(`s${s}`, { seed: s + 1 });
    g.input(name(s * per), "float32", [B, W]);
    for (let i = s * per; i < (s + 1) * per; i++) {
      const w = g.weight(`W${i}`, [W, W]);
      const m = g.node("MatMul", [name(i), w], {}, `m${i}`);
      g.node("Relu", [m], {}, name(i + 1));
    }
    g.output(name((s + 1) * per), "float32", [B, W]);
    const bytes = encodeModel(g.toModel());
    const file = `stage_${s}.onnx`;
    writeFileSync(join(dir, file), bytes);
    return {
      index: s,
      file,
      inputs: [name(s * per)],
      outputs: [name((s + 1) * per)],
      params: per * W * W,
      macs: per * B * W * W,
      bytesIn: B * W * 4,
      bytesOut: B * W * 4,
      nodes: 2 * per,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    };
  });
  const tensors = Object.fromEntries(
    Array.from({ length: stages + 1 }, (_, s) => [name(s * per), spec(name(s * per))]),
  );
  const manifest: Manifest = {
    version: 1,
    model: "chain",
    inputs: [spec("x")],
    outputs: [spec("y")],
    tensors,
    stages: st,
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}
