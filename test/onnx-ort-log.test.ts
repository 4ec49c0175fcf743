import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { saveModel } from "../src/onnx/model-io.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-ortlog-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A model onnxruntime warns about (an unused initializer) and whose shapes need an onnxruntime run
 * (NonZero's output size depends on the data), so `inspect` opens a session.
 */
function noisyModel(path: string): void {
  const b = new GraphBuilder("noisy", { seed: 4 });
  const x = b.input("x", "float32", [1, 8]);
  b.weight("unused_w", [8, 8]);
  const nz = b.node("NonZero", [b.node("Relu", [b.node("MatMul", [x, b.weight("w", [8, 8])])])]);
  b.output(nz, "int64");
  saveModel(b.toModel(), path);
}

test("onnxruntime's log lines stay off stderr unless CLEAVE_ORT_LOG asks; --json stays one document", () => {
  const file = join(dir, "noisy.onnx");
  noisyModel(file);
  const quiet = cleave(["inspect", file, "--json"]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, "");
  assert.equal(JSON.parse(quiet.stdout).operators.NonZero, 1);

  const saved = process.env.CLEAVE_ORT_LOG;
  process.env.CLEAVE_ORT_LOG = "warning";
  try {
    const loud = cleave(["inspect", file, "--json"]);
    assert.equal(loud.code, 0, loud.stderr);
    assert.match(loud.stderr, /onnxruntime.*unused_w/, "asked for, onnxruntime's warnings appear on stderr");
    assert.equal(JSON.parse(loud.stdout).operators.NonZero, 1, "stdout is still one JSON document");
  } finally {
    if (saved === undefined) delete process.env.CLEAVE_ORT_LOG;
    else process.env.CLEAVE_ORT_LOG = saved;
  }
});
