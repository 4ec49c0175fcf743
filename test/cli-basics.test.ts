import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { VERSION } from "../src/version.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function small(mutate?: (b: GraphBuilder) => void): string {
  const b = new GraphBuilder("small");
  const x = b.input("x", "float32", ["batch", 3, 16, 16]);
  const y = b.node(
    "Relu",
    [b.node("Conv", [x, b.weight("w", [4, 3, 3, 3])], { pads: [1, 1, 1, 1] }, "conv")],
    {},
    "relu",
  );
  b.output(b.node("GlobalAveragePool", [y], {}, "pool"));
  mutate?.(b);
  const path = join(dir, `m${Math.random().toString(36).slice(2)}.onnx`);
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

test("inspect --json has the documented fields and fixes a lone batch to 1", () => {
  const r = cleave(["inspect", small(), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ["nodes", "params", "paramBytes", "macs", "inputs", "outputs", "layers"])
    assert.ok(k in j, k);
  assert.deepEqual(j.inputs, [{ name: "x", shape: [1, 3, 16, 16], dtype: "float32" }]);
  assert.equal(j.params, 4 * 3 * 3 * 3);
  assert.equal(j.macs, 16 * 16 * 4 * 27);
  const conv = j.layers.find((l: { name: string }) => l.name === "conv");
  assert.deepEqual(conv.outputs[0], {
    name: "conv",
    shape: [1, 4, 16, 16],
    dtype: "float32",
    bytes: 4 * 16 * 16 * 4,
  });
});

test("--input-shape sets symbolic dimensions", () => {
  const r = cleave(["inspect", small(), "--json", "--input-shape", "x=2x3x16x16"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).outputs[0].shape, [2, 4, 1, 1]);
});

test("zoo --list, zoo build and inspect of the written file agree", () => {
  const list = cleave(["zoo", "--list", "--json"]);
  assert.equal(list.code, 0);
  assert.ok(JSON.parse(list.stdout).some((m: { name: string }) => m.name === "resnet18"));
  const out = join(dir, "sq.onnx");
  assert.equal(cleave(["zoo", "squeezenet1_1", "-o", out]).code, 0);
  const j = JSON.parse(cleave(["inspect", out, "--json"]).stdout);
  assert.ok(Math.abs(j.params - 1_235_496) / 1_235_496 < 0.02);
});

test("cuts and split from the command line", () => {
  const model = small();
  const cuts = JSON.parse(cleave(["cuts", model, "--json"]).stdout);
  assert.equal(cuts.cuts.length, 2);
  const out = join(dir, "split-ok");
  const r = cleave(["split", model, "--cuts", "1,2", "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  assert.equal(manifest.stages.length, 3);
  assert.deepEqual(manifest.stages[1].inputs, ["conv"]);
});

test("user mistakes give one line on stderr, a non-zero exit, and no stack trace", () => {
  const notOnnx = join(dir, "readme.onnx");
  writeFileSync(notOnnx, "hello");
  const truncated = join(dir, "trunc.onnx");
  writeFileSync(truncated, readFileSync(small()).subarray(0, 300));
  const cyclic = small((b) => {
    b.nodes[0].input[0] = b.nodes[2].output[0];
  });
  const undefinedRead = small((b) => {
    b.nodes[1].input[0] = "ghost";
  });
  const model = small();
  const cases: Array<[string[], RegExp]> = [
    [["inspect", join(dir, "nope.onnx")], /nope\.onnx: no such file/],
    [["inspect", notOnnx], /readme\.onnx: not a valid ONNX model/],
    [["inspect", truncated], /trunc\.onnx: not a valid ONNX model/],
    [["inspect", cyclic], /cycle through nodes/],
    [["inspect", undefinedRead], /reads tensor 'ghost'/],
    [["inspect", model, "--input-shape", "y=1x3x16x16"], /unknown input 'y'/],
    [["inspect", model, "--input-shape", "x=banana"], /--input-shape: expected name=1x3x224x224/],
    [["inspect", model, "--frobnicate"], /Unknown option '--frobnicate'/],
    [["inspect"], /missing model file/],
    [
      ["zoo", "resnet1000", "-o", join(dir, "x.onnx")],
      /unknown zoo model 'resnet1000' \(available: .*resnet50/,
    ],
    [["split", model, "--cuts", "ghost", "-o", join(dir, "s1")], /cut tensor 'ghost' is not a tensor/],
    [["split", model, "--cuts", "2,1", "-o", join(dir, "s2")], /cut 1 comes before cut 2/],
    [["split", model, "--stages", "9", "-o", join(dir, "s3")], /at most 3 stages/],
    [["split", model, "--stages", "2"], /give the output folder/],
    [["frob"], /unknown command 'frob'/],
  ];
  for (const [args, re] of cases) {
    const r = cleave(args);
    assert.notEqual(r.code, 0, args.join(" "));
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], re, args.join(" "));
  }
  for (const s of ["s1", "s2", "s3"]) assert.ok(!existsSync(join(dir, s)), `${s} not created`);
  assert.ok(!readdirSync(dir).some((f) => f.includes(".tmp-")), "no temporary folders left");
});

test("--version and --help", () => {
  assert.equal(cleave(["--version"]).stdout.trim(), VERSION);
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8"));
  assert.equal(VERSION, pkg.version, "src/version.ts matches package.json");
  const help = cleave(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /inspect/);
  assert.match(cleave(["split", "--help"]).stdout, /--stages/);
});
