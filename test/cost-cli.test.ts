import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadProfile } from "../src/cost/profile.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-cost-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function model(name: string, channels: number): string {
  const b = new GraphBuilder(name);
  let h = b.input("x", "float32", [1, 8, 32, 32]);
  let cin = 8;
  for (let i = 0; i < 4; i++) {
    h = b.node("Conv", [h, b.weight("w", [channels, cin, 3, 3])], { pads: [1, 1, 1, 1] }, `conv${i}`);
    h = b.node("Relu", [h], {}, `relu${i}`);
    cin = channels;
  }
  b.output(b.node("GlobalAveragePool", [h], {}, "pool"));
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

const CLUSTER = `
name: two
inputDevice: a
outputDevice: b
devices:
  - { name: a, kind: cpu, throughput: 20 GMAC/s, memoryBandwidth: 10GB/s, memory: 1GiB, idlePower: 1W, activePower: 3W }
  - { name: b, kind: accelerator, throughput: 40 GMAC/s, memoryBandwidth: 10GB/s, memory: 1GiB, idlePower: 0.1W, activePower: 1W }
links:
  - { devices: [a, b], kind: ethernet, bandwidth: 1Gbit/s, latency: 0.1ms, energyPerBit: 5nJ/bit }
`;

test("cleave profile writes a profile that cleave estimate uses, and refuses another model's profile", () => {
  const m = model("m", 16);
  const out = join(dir, "m.json");
  const r = cleave(["profile", m, "-o", out, "--runs", "3", "--warmup", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stderr.includes("\r"), "no progress bar when not a terminal");
  for (const line of r.stderr.split("\n").filter((l) => l !== ""))
    assert.match(line, /^cleave: [a-z ]+ \d+%( \(\d+ s\))?$/, "only progress lines on stderr");
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.output, out);
  assert.equal(summary.kernels, 5); // 4 Conv+Relu kernels and the pool
  assert.equal(summary.fused, 4);
  const profile = loadProfile(out);
  assert.equal(profile.runs, 3);

  const clusterPath = join(dir, "two.yaml");
  writeFileSync(clusterPath, CLUSTER);
  const e = cleave(["estimate", m, "--cluster", clusterPath, "--profile", `a=${out}`, "--json"]);
  assert.equal(e.code, 0, e.stderr);
  const est = JSON.parse(e.stdout);
  assert.equal(est.stages.length, 2);
  assert.deepEqual(
    est.stages.map((s: { device: string; source: string }) => [s.device, s.source]),
    [
      ["a", "measured"],
      ["b", "analytic"],
    ],
  );
  assert.ok(est.endToEnd > 0 && est.throughput > 0);
  assert.equal(est.transfers.length, 1);
  assert.ok(
    Math.abs(est.endToEnd - (est.stages[0].latency + est.stages[1].latency + est.transfers[0].time)) < 1e-12,
  );

  const text = cleave(["estimate", m, "--cluster", clusterPath, "--stages", "1"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /end-to-end .* pipelined .* inf\/s/);

  const other = model("other", 8);
  const bad = cleave(["estimate", other, "--cluster", clusterPath, "--profile", `a=${out}`]);
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stderr.trim(),
    `error: profile of a: profile is for model 'm.onnx' (9 nodes), not 'other.onnx' (9 nodes); profile this model with cleave profile`,
  );
});

test("cleave profile and estimate name what is missing or wrong", () => {
  const m = model("n", 8);
  const noOut = cleave(["profile", m]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /^error: cleave profile: missing -o profile.json/);
  const noCluster = cleave(["estimate", m]);
  assert.equal(noCluster.code, 2);
  assert.equal(noCluster.stderr.trim(), "error: cleave estimate: missing --cluster c.yaml");
  const badCluster = join(dir, "bad.yaml");
  writeFileSync(badCluster, CLUSTER.replace("memory: 1GiB, idlePower: 1W", "memory: lots, idlePower: 1W"));
  const r = cleave(["estimate", m, "--cluster", badCluster]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr.trim(),
    `error: ${badCluster}: devices[0].memory: expected bytes like "4GiB", got "lots"`,
  );
  assert.ok(!existsSync(join(dir, "n.json")));
});
