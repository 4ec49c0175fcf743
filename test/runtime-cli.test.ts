import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { main } from "../src/cli/main.js";
import { maxSessionThreads } from "../src/onnx/ort.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false }, out, err };
}

let cluster: LocalCluster;
before(async () => {
  cluster = await startLocalWorkers([{ name: "p0" }]);
});
after(async () => {
  await cluster.stop();
});

test("cleave probe measures bandwidth and round trip to a worker", async () => {
  const c = capture();
  const code = await main(
    ["probe", cluster.workers[0].endpoint, "--token", cluster.token, "--json", "--mib", "2"],
    c.io,
  );
  assert.equal(code, 0, c.err.join("\n"));
  const r = JSON.parse(c.out[0]);
  assert.equal(r.worker, "p0");
  assert.ok(r.mibPerSecond > 0 && r.rttMs.p50 > 0 && r.link.bandwidth > 0 && r.link.latency > 0);
  const h = capture();
  assert.equal(
    await main(["probe", cluster.workers[0].endpoint, "--token", cluster.token, "--mib", "1"], h.io),
    0,
  );
  assert.match(
    h.out[0],
    /^worker p0 at 127\.0\.0\.1:\d+ \(cleave [\d.]+\): [\d.]+ MiB\/s \(\d+ Mbit\/s\), round trip [\d.]+ ms/,
  );
});

test("CLI errors are one line: wrong token, bad listen address, bad testbed action", async () => {
  const c = capture();
  assert.equal(await main(["probe", cluster.workers[0].endpoint, "--token", "nope"], c.io), 1);
  assert.deepEqual(c.err, [
    `error: ${cluster.workers[0].endpoint}: wrong token (the worker refused the handshake)`,
  ]);
  const w = capture();
  assert.equal(await main(["worker", "--listen", "nowhere"], w.io), 2);
  assert.deepEqual(w.err, ["error: --listen: 'nowhere' is not host:port"]);
  const t = capture();
  assert.equal(await main(["testbed", "sideways"], t.io), 2);
  assert.match(t.err[0], /^error: cleave testbed: expected 'up', 'down' or 'status', got 'sideways'$/);
});

/** Starts a real `cleave worker` with `args`, returns its first line of output, and stops it. */
async function startLine(args: string[]): Promise<string> {
  const [cmd, ...rest] = cliCommand();
  const child = spawn(cmd, [...rest, "worker", "--listen", "127.0.0.1:0", "--exit-on-stdin-close", ...args]);
  const rl = createInterface({ input: child.stdout });
  const [line] = (await once(rl, "line")) as [string];
  rl.close();
  child.stdin.end();
  await once(child, "exit");
  return line;
}

test("a worker's start line says what it is once, with its name only when one was given", async () => {
  assert.match(await startLine([]), /^cleave worker listening on 127\.0\.0\.1:[1-9]\d*$/);
  assert.match(
    await startLine(["--name", "pi-a"]),
    /^cleave worker pi-a listening on 127\.0\.0\.1:[1-9]\d*$/,
  );
});

test("--threads above 4 per CPU is refused in one line", async () => {
  const max = maxSessionThreads();
  const c = capture();
  assert.equal(await main(["worker", "--threads", String(max + 1)], c.io), 2);
  assert.deepEqual(c.err, [
    `error: --threads: ${max + 1} threads is above the limit of ${max} (4 per CPU, ${max / 4} CPUs here)`,
  ]);
});
