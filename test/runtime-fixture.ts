import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest, TensorSpec } from "../src/export/manifest.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import type { DType } from "../src/onnx/dtype.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { seededRandom } from "../src/onnx/prng.js";

/** One node of a hand-built fixture: op, input names, its single output name, attributes. */
export interface FixtureOp {
  op: string;
  inputs: string[];
  output: string;
  attrs?: Record<string, number | number[]>;
}

/** A hand-built split model: tensor types, weights, and the ops of each stage. */
export interface FixtureSpec {
  tensors: Record<string, { dtype: DType; shape: number[] }>;
  weights: Record<string, number[]>;
  inputs: string[];
  outputs: string[];
  stages: Array<{ ops: FixtureOp[]; inputs: string[]; outputs: string[] }>;
}

/** A written fixture: the folder with manifest.json and stage files, and the whole model's bytes. */
export interface Fixture {
  dir: string;
  manifest: Manifest;
  whole: Uint8Array;
}

function weightData(shape: number[], seed: number): Float32Array {
  const r = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const bound = Math.sqrt(6 / shape[0]);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * bound);
}

function build(
  spec: FixtureSpec,
  name: string,
  inputs: string[],
  outputs: string[],
  ops: FixtureOp[],
): Uint8Array {
  const g = new GraphBuilder(name);
  for (const i of inputs) g.input(i, spec.tensors[i].dtype, spec.tensors[i].shape);
  const used = new Set(ops.flatMap((o) => o.inputs));
  Object.keys(spec.weights).forEach((w, k) => {
    if (used.has(w)) g.constant(w, "float32", spec.weights[w], weightData(spec.weights[w], k + 1));
  });
  for (const o of ops) g.node(o.op, o.inputs, o.attrs ?? {}, o.output);
  for (const o of outputs) g.output(o, spec.tensors[o].dtype, spec.tensors[o].shape);
  return encodeModel(g.toModel());
}

/** Temp folders made by fixtures, removed when the test process exits. */
const made = new Set<string>();
process.once("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Writes the stage models and manifest.json of a fixture into a new temp folder (removed at exit). */
export function writeFixture(spec: FixtureSpec): Fixture {
  const dir = mkdtempSync(join(tmpdir(), "cleave-rt-"));
  made.add(dir);
  const t = (n: string): TensorSpec => ({ name: n, ...spec.tensors[n] });
  const stages = spec.stages.map((s, i) => {
    const bytes = build(spec, `stage${i}`, s.inputs, s.outputs, s.ops);
    const file = `stage_${i}.onnx`;
    writeFileSync(join(dir, file), bytes);
    return {
      index: i,
      file,
      inputs: s.inputs,
      outputs: s.outputs,
      params: 0,
      macs: 0,
      bytesIn: 0,
      bytesOut: 0,
      nodes: s.ops.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    };
  });
  const manifest: Manifest = {
    version: 1,
    model: "fixture.onnx",
    inputs: spec.inputs.map(t),
    outputs: spec.outputs.map(t),
    tensors: Object.fromEntries(Object.keys(spec.tensors).map((n) => [n, t(n)])),
    stages,
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  const whole = build(
    spec,
    "whole",
    spec.inputs,
    spec.outputs,
    spec.stages.flatMap((s) => s.ops),
  );
  return { dir, manifest, whole };
}

const f32 = (shape: number[]) => ({ dtype: "float32" as DType, shape });

/**
 * Branchy 3-stage model. Stage 0 makes `b` and `c` from `x`; stage 1 reads `b` only; stage 2 reads `c`
 * (which skips stage 1), stage 1's `d`, and the model input `x` again. Outputs: `y` (stage 2) and
 * `z` (stage 1, a model output from a middle stage).
 */
export function branchySpec(width = 16): FixtureSpec {
  return {
    tensors: {
      x: f32([1, width]),
      a: f32([1, width]),
      b: f32([1, width]),
      c: f32([1, width]),
      d: f32([1, width]),
      z: f32([1, width]),
      e: f32([1, width]),
      e2: f32([1, width]),
      y: f32([1, 8]),
    },
    weights: { W1: [width, width], W2: [width, width], W3: [width, 8] },
    inputs: ["x"],
    outputs: ["y", "z"],
    stages: [
      {
        inputs: ["x"],
        outputs: ["b", "c"],
        ops: [
          { op: "MatMul", inputs: ["x", "W1"], output: "a" },
          { op: "Relu", inputs: ["a"], output: "b" },
          { op: "Tanh", inputs: ["a"], output: "c" },
        ],
      },
      {
        inputs: ["b"],
        outputs: ["d", "z"],
        ops: [
          { op: "MatMul", inputs: ["b", "W2"], output: "d" },
          { op: "Sigmoid", inputs: ["d"], output: "z" },
        ],
      },
      {
        inputs: ["x", "c", "d"],
        outputs: ["y"],
        ops: [
          { op: "Add", inputs: ["c", "d"], output: "e" },
          { op: "Add", inputs: ["e", "x"], output: "e2" },
          { op: "MatMul", inputs: ["e2", "W3"], output: "y" },
        ],
      },
    ],
  };
}

/**
 * Two stages where stage 1 gathers column `idx` of stage 0's output: an `idx` outside [0, width) makes
 * onnxruntime throw in stage 1 for that request only.
 */
export function gatherSpec(width = 16): FixtureSpec {
  return {
    tensors: { x: f32([1, width]), idx: { dtype: "int64", shape: [1] }, a: f32([1, width]), g: f32([1, 1]) },
    weights: {},
    inputs: ["x", "idx"],
    outputs: ["g"],
    stages: [
      { inputs: ["x"], outputs: ["a"], ops: [{ op: "Relu", inputs: ["x"], output: "a" }] },
      {
        inputs: ["a", "idx"],
        outputs: ["g"],
        ops: [{ op: "Gather", inputs: ["a", "idx"], output: "g", attrs: { axis: 1 } }],
      },
    ],
  };
}

/** One stage, `y = Relu(x)` on a [1, width] input (used for frame-size limits). */
export function reluSpec(width: number): FixtureSpec {
  return {
    tensors: { x: f32([1, width]), y: f32([1, width]) },
    weights: {},
    inputs: ["x"],
    outputs: ["y"],
    stages: [{ inputs: ["x"], outputs: ["y"], ops: [{ op: "Relu", inputs: ["x"], output: "y" }] }],
  };
}
