import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { main } from "../src/cli/main.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";

// Workers configured like a service (a config file, the token in a file, a metrics endpoint) and found
// through the cluster file's endpoint: by run and serve, with no --workers.

let dir: string;
let worker: ChildProcess;
let workerLines: AsyncIterator<string>;
let endpoint: string;
let metricsUrl: string;
const children: ChildProcess[] = [];

function spawnCli(args: string[]): ChildProcess {
  const [cmd, ...rest] = cliCommand();
  const c = spawn(cmd, [...rest, ...args], { env: { ...process.env, CLEAVE_TOKEN: "" } });
  children.push(c);
  return c;
}

/** The next line of a child's output (an async iterator buffers lines that arrive together). */
async function line(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  assert.ok(!r.done, "the process ended its output");
  return r.value;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cleave-fleet-test-"));
  const g = new GraphBuilder("tiny");
  g.input("x", "float32", [1, 8]);
  const w = g.weight("w", [8, 4]);
  g.node("MatMul", ["x", w], {}, "y");
  g.output("y", "float32", [1, 4]);
  writeFileSync(join(dir, "tiny.onnx"), encodeModel(g.toModel()));
  writeFileSync(join(dir, "token"), "s3cret\n");
  writeFileSync(
    join(dir, "worker.yaml"),
    `listen: 127.0.0.1:0\nname: edge0\ntoken-file: ${join(dir, "token")}\nmetrics: 127.0.0.1:0\nthreads: 1\n`,
  );
  worker = spawnCli(["worker", "--config", join(dir, "worker.yaml")]);
  workerLines = createInterface({ input: worker.stdout! })[Symbol.asyncIterator]();
  endpoint = /listening on (\S+)$/.exec(await line(workerLines))![1];
  metricsUrl = /metrics on (\S+)$/.exec(await line(workerLines))![1];
  writeFileSync(
    join(dir, "cluster.yaml"),
    [
      "name: fleet",
      "inputDevice: edge0",
      "outputDevice: edge0",
      "devices:",
      "  - name: edge0",
      "    kind: cpu",
      "    throughput: 10 GMAC/s",
      "    memoryBandwidth: 5GB/s",
      "    memory: 1GiB",
      "    idlePower: 1W",
      "    activePower: 3W",
      `    endpoint: ${endpoint}`,
      "links: []",
      "",
    ].join("\n"),
  );
});

after(async () => {
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
      await once(c, "exit");
    }
  rmSync(dir, { recursive: true, force: true });
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false }, out, err };
}

test("run uses the cluster file's endpoint with the token from a file; a wrong token is refused", async () => {
  const c = capture();
  const args = ["run", join(dir, "tiny.onnx"), "--stages", "1", "--cluster", join(dir, "cluster.yaml")];
  const code = await main([...args, "--token-file", join(dir, "token"), "--requests", "20", "--json"], c.io);
  assert.equal(code, 0, c.err.join("\n"));
  const r = JSON.parse(c.out[0]);
  assert.deepEqual(r.devices, ["edge0"]);
  assert.equal(r.report.completed, 20);
  writeFileSync(join(dir, "wrong"), "nope\n");
  const bad = capture();
  assert.equal(await main([...args, "--token-file", join(dir, "wrong"), "--requests", "2"], bad.io), 1);
  assert.match(bad.err.join("\n"), /edge0 .*wrong token/);
});

async function scrape(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const l of text.split("\n"))
    if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) sum += Number(l.slice(l.lastIndexOf(" ") + 1));
  return sum;
}

test("serve deploys on the endpoint's worker; the worker's metrics move while it serves", async () => {
  const s = spawnCli([
    "serve",
    join(dir, "tiny.onnx"),
    "--stages",
    "1",
    "--cluster",
    join(dir, "cluster.yaml"),
    "--token-file",
    join(dir, "token"),
    "--listen",
    "127.0.0.1:0",
    "--name",
    "tinynet",
  ]);
  const out = createInterface({ input: s.stdout! })[Symbol.asyncIterator]();
  const url = /on (http:\/\/\S+)\/v2\/models\/tinynet$/.exec(await line(out))![1];
  const before = await scrape(metricsUrl, "cleave_worker_stage_runs");
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${url}/v2/models/tinynet/infer`, {
      method: "POST",
      body: JSON.stringify({
        inputs: [{ name: "x", shape: [1, 8], datatype: "FP32", data: [1, 2, 3, 4, 5, 6, 7, 8] }],
      }),
    });
    assert.equal(r.status, 200);
  }
  assert.equal((await scrape(metricsUrl, "cleave_worker_stage_runs")) - before, 5);
  assert.ok((await scrape(metricsUrl, "cleave_worker_stage_compute_seconds")) > 0);
  assert.equal(await scrape(`${url}/metrics`, "cleave_stage_runs_total"), 5);
  s.kill("SIGTERM");
  assert.equal(((await once(s, "exit")) as [number])[0], 0);
  // The serve undeployed: the worker holds no stage any more, and is free for the next deployment.
  assert.equal(await scrape(metricsUrl, "cleave_worker_stage_runs"), 0);
});

test("worker config errors are one line naming the file and key", async () => {
  writeFileSync(join(dir, "bad.yaml"), "listen: 127.0.0.1:0\nthreds: 2\n");
  const c = capture();
  assert.equal(await main(["worker", "--config", join(dir, "bad.yaml")], c.io), 2);
  assert.equal(c.err.length, 1);
  assert.match(
    c.err[0],
    /bad\.yaml: unknown key 'threds' \(a worker config takes listen, token, token-file, threads/,
  );
  const t = capture();
  writeFileSync(join(dir, "empty"), "\n");
  assert.equal(await main(["worker", "--token-file", join(dir, "empty")], t.io), 2);
  assert.match(t.err[0], /--token-file .*empty: the file is empty/);
});
