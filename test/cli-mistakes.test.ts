import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CleaveError } from "../src/errors.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { writeOutputFile } from "../src/output-file.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-mistakes-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** conv -> relu -> pool, with a symbolic batch: small enough that every command runs in a second. */
function small(name: string, inputShape: Array<number | string> = ["batch", 3, 16, 16]): string {
  const b = new GraphBuilder(name);
  const x = b.input("x", "float32", inputShape);
  const y = b.node("Relu", [b.node("Conv", [x, b.weight("w", [4, 3, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(b.node("GlobalAveragePool", [y]));
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

const model = small("small");
const symbolic = small("symbolic", ["n", "c", "h", "w"]);
/** A regular file, used where a folder is expected. */
const aFile = join(dir, "a-file");
writeFileSync(aFile, "not a folder");
const aFolder = join(dir, "a-folder");
mkdirSync(aFolder);

const cluster = (name: string, edit: (text: string) => string) => {
  const text = readFileSync(
    join(import.meta.dirname, "..", "..", "examples", "clusters", "pi4-pair.yaml"),
    "utf8",
  );
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, edit(text));
  return path;
};
const negativeMemory = cluster("negative", (t) => t.replace(/memory: \S+/, "memory: -3GiB"));
const bareBandwidth = cluster("bare", (t) => t.replace(/bandwidth: \S+/, "bandwidth: 750"));
const corruptState = join(dir, "testbed-state.json");
writeFileSync(corruptState, '{"version": 1, "workers": [');

test("every mistake gives one error: line, a non-zero exit and no half-written file", () => {
  const plan = join(dir, "plan.json");
  const made = cleave(["plan", model, "--cluster", "pi4-pair", "-o", plan]);
  assert.equal(made.code, 0, made.stderr);

  const cases: Array<[string[], RegExp]> = [
    // Outputs that cannot be written: a full device, a file where a folder should be, a folder as the file.
    [
      ["zoo", "squeezenet1_1", "-o", "/dev/full"],
      /^error: \/dev\/full: cannot write \(no space left on the device\)$/,
    ],
    [
      ["zoo", "squeezenet1_1", "-o", join(aFile, "m.onnx")],
      /a-file\/m\.onnx: cannot write \(.*a-file is not a folder\)/,
    ],
    [["zoo", "squeezenet1_1", "-o", aFolder], /a-folder: cannot write \(is a folder\)/],
    [
      ["plan", model, "--cluster", "pi4-pair", "-o", "/dev/full"],
      /\/dev\/full: cannot write \(no space left/,
    ],
    [["plan", model, "--cluster", "pi4-pair", "-o", join(aFile, "p.json")], /a-file is not a folder/],
    [
      ["profile", model, "--runs", "1", "--warmup", "0", "-o", "/dev/full"],
      /\/dev\/full: cannot write \(no space/,
    ],
    [["profile", model, "-o", join(aFile, "p.json")], /a-file is not a folder/],
    [["split", model, "--stages", "2", "-o", join(aFile, "out")], /a-file is not a folder/],
    [["bench", model, "-o", join(aFile, "bench.json")], /a-file is not a folder/],
    [["demo", "-o", join(aFile, "demo")], /a-file is not a folder/],
    [["report", "--plan", plan, "-o", "/dev/full"], /\/dev\/full: cannot write \(no space/],
    [["report", "--plan", plan, "-o", aFolder], /a-folder: cannot write \(is a folder\)/],
    // Absurd sizes.
    [
      ["inspect", model, "--input-shape", "x=99999999999999999999x3x16x16"],
      /--input-shape: .* more than the 2147483647/,
    ],
    [
      ["profile", symbolic, "--input-shape", "x=65536x65536x16x16", "-o", join(dir, "p.json")],
      /more than the/,
    ],
    [
      ["profile", model, "--threads", "100000", "-o", join(dir, "p.json")],
      /--threads: at most \d+ \(the CPUs/,
    ],
    [["profile", model, "--runs", "1e3", "-o", join(dir, "p.json")], /--runs: expected an integer/],
    // Values without units, negative sizes.
    [
      ["estimate", model, "--cluster", negativeMemory, "--stages", "1"],
      /devices\[0\]\.memory: .*"-3GiB" \(negative/,
    ],
    [
      ["estimate", model, "--cluster", bareBandwidth, "--stages", "1"],
      /links\[0\]\.bandwidth: .*got 750 \(a number without a unit/,
    ],
    [["plan", model, "--cluster", "pi4-pair", "--max-link-bytes=-3GiB"], /--max-link-bytes: .*\(negative/],
    // Clusters by name.
    [
      ["estimate", model, "--cluster", "pi5-pair", "--stages", "1"],
      /--cluster pi5-pair: .*built-in: .*local.*pi4-pair/,
    ],
    [
      ["estimate", model, "--cluster", join(dir, "nope.yaml"), "--stages", "1"],
      /nope\.yaml: no such cluster file/,
    ],
    // A corrupt testbed state file.
    [
      ["run", model, "--stages", "2", `--testbed=${corruptState}`],
      /testbed-state\.json: not a cleave testbed state file/,
    ],
    // Workers that are not the plan's devices, or devices without a worker: never measured locally instead.
    [
      ["run", model, "--plan", plan, "--workers", "pi-a=127.0.0.1:1,pi-b=127.0.0.1:2"],
      /--workers: 'pi-a', 'pi-b' are not devices of .*plan\.json \(its devices: pi4-a/,
    ],
    [
      ["run", model, "--stages", "2", "--workers", "core0=127.0.0.1:1"],
      /--workers: no worker for device 'core1' of the split over cluster local/,
    ],
    // A heartbeat of 0 would lose every worker at once.
    [
      ["run", model, "--stages", "2", "--heartbeat-ms", "0"],
      /--heartbeat-ms: expected an integer >= 1, got '0'/,
    ],
    [
      ["bench", model, "--cluster", "local", "--workers", "core0=127.0.0.1:1,gpu=127.0.0.1:2"],
      /--workers: 'gpu' is not a device of cluster local/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = cleave(args);
    const what = args.join(" ");
    assert.notEqual(r.code, 0, what);
    // Progress lines ("cleave: step (3 s)") may come first when a step runs long; then exactly one error.
    const lines = r.stderr
      .trim()
      .split("\n")
      .filter((l) => !/^cleave: .*\(\d+ s\)$/.test(l));
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.match(lines[0], /^error: /, what);
    assert.match(lines[0], re, what);
  }
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes(".tmp-")),
    [],
    "no temporary files left",
  );
  assert.ok(!existsSync(join(dir, "p.json")), "no profile written by a refused command");
  assert.deepEqual(readdirSync(aFolder), [], "nothing written into the folder given as a file");
});

test("a shipped cluster by name is the same cluster as its file", () => {
  const byName = cleave(["estimate", model, "--cluster", "edge-mix", "--stages", "2", "--json"]);
  const byPath = cleave([
    "estimate",
    model,
    "--cluster",
    join(import.meta.dirname, "..", "..", "examples", "clusters", "edge-mix.yaml"),
    "--stages",
    "2",
    "--json",
  ]);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byPath.code, 0, byPath.stderr);
  assert.deepEqual(JSON.parse(byName.stdout), JSON.parse(byPath.stdout));
});

test("an output write that fails midway leaves the old file and no temporary file", () => {
  const target = join(dir, "atomic", "out.bin");
  writeOutputFile(target, "old");
  assert.equal(readFileSync(target, "utf8"), "old");
  // The second chunk is not bytes: the write throws after the first chunk reached the temporary file.
  const chunks = [Buffer.from("new"), { length: 3 } as unknown as Uint8Array];
  assert.throws(
    () => writeOutputFile(target, chunks),
    (e: unknown) => e instanceof CleaveError && e.code === "FILE_UNWRITABLE" && e.message.startsWith(target),
  );
  assert.equal(readFileSync(target, "utf8"), "old");
  assert.deepEqual(readdirSync(join(dir, "atomic")), ["out.bin"]);
  writeOutputFile(target, [Buffer.from("ne"), Buffer.from("w")]);
  assert.equal(readFileSync(target, "utf8"), "new");
});
