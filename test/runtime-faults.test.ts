import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ort, randomTensor } from "../src/onnx/ort.js";
import { connectWorker } from "../src/runtime/transport/handshake.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import type { Pipeline } from "../src/runtime/coordinator/pipeline.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";
import { Worker } from "../src/runtime/worker/worker.js";
import { VERSION } from "../src/version.js";
import { branchySpec, type Fixture, gatherSpec, reluSpec, writeFixture } from "./runtime-fixture.js";

let cluster: LocalCluster;
let branchy: Fixture;
let gather: Fixture;
const inProcess: Worker[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startWorker(opts: ConstructorParameters<typeof Worker>[0]): Promise<string> {
  const w = new Worker(opts);
  inProcess.push(w);
  const a = await w.start();
  return `${a.host}:${a.port}`;
}

before(async () => {
  branchy = writeFixture(branchySpec(32));
  gather = writeFixture(gatherSpec(16));
  cluster = await startLocalWorkers([{ name: "w0" }, { name: "w1" }, { name: "w2" }]);
});

after(async () => {
  const pids = cluster.pids;
  await cluster.stop();
  for (const w of inProcess) await w.stop();
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});

test("an unreachable worker is named with its endpoint and the reason", async () => {
  const l = await new TcpTransport().listen("127.0.0.1", 0, () => {});
  const dead = `127.0.0.1:${l.port}`;
  await l.close();
  const workers = [cluster.workers[0], { name: "w1", endpoint: dead }, cluster.workers[2]];
  await assert.rejects(deploy(branchy.dir, workers, { token: cluster.token }), {
    name: "RuntimeFault",
    message: `worker w1 at ${dead}: unreachable (ECONNREFUSED)`,
  });
});

test("a wrong token is refused before anything is accepted", async () => {
  await assert.rejects(deploy(branchy.dir, cluster.workers, { token: "not-the-token" }), {
    message: `worker w0 at ${cluster.workers[0].endpoint}: wrong token (the worker refused the handshake)`,
  });
  // A peer that skips the hello and sends a tensor right away is cut off without an answer.
  const conn = await new TcpTransport().connect(cluster.workers[0].endpoint);
  const closed = new Promise<void>((r) => conn.onClose(() => r()));
  const got: string[] = [];
  conn.onFrame((f) => got.push(f.type === "control" ? f.msg.t : "tensor"));
  await conn.send({
    type: "tensor",
    requestId: 1,
    name: "x",
    dtype: "float32",
    shape: [1, 32],
    data: new Uint8Array(128),
  });
  await closed;
  assert.deepEqual(got, ["reject"]);
  // The workers still serve a coordinator with the right token.
  const p = await deploy(branchy.dir, cluster.workers, { token: cluster.token });
  await p.infer({ x: randomTensor("float32", [1, 32]) });
  await p.close();
});

test("versions must match on both sides", async () => {
  const old = await startWorker({ name: "old", version: "0.0.9" });
  await assert.rejects(
    deploy(branchy.dir, [{ name: "w0", endpoint: old }, ...cluster.workers.slice(1)], {
      token: cluster.token,
    }),
    {
      message: `worker w0 at ${old}: runs cleave 0.0.9, this is ${VERSION}`,
    },
  );
  await assert.rejects(
    connectWorker(new TcpTransport(), cluster.workers[0].endpoint, {
      token: cluster.token,
      role: "coordinator",
      from: "test",
      version: "9.9.9",
    }),
    { message: `${cluster.workers[0].endpoint}: runs cleave ${VERSION}, this is 9.9.9` },
  );
});

test("a stage that throws fails only its request, naming worker and stage; the worker keeps serving", async () => {
  const p = await deploy(gather.dir, cluster.workers.slice(0, 2), { token: cluster.token });
  const feeds = (i: number) => ({
    x: randomTensor("float32", [1, 16], 3),
    idx: new ort.Tensor("int64", new BigInt64Array([BigInt(i)]), [1]),
  });
  await assert.rejects(p.infer(feeds(99)), (err: Error) => {
    assert.equal(err.name, "RuntimeFault");
    assert.match(err.message, /^worker w1 \(stage 1\): request \d+ failed: onnxruntime failed: .+/);
    return true;
  });
  const ok = await p.infer(feeds(5));
  const x = randomTensor("float32", [1, 16], 3).data as Float32Array;
  assert.equal((ok.g.data as Float32Array)[0], Math.max(0, x[5]));
  const r = await p.runMany({ count: 20, feeds: (i) => feeds(i % 2 === 0 ? 1 : 16) }, { inFlight: 4 });
  assert.equal(r.completed, 10);
  assert.equal(r.failed, 10);
  const ws = await p.workerStats();
  assert.equal(ws[1].stages[0].errors, 11);
  assert.equal(ws[1].stages[0].runs, 11);
  await p.close();
});

test("a tensor of the wrong shape reaching a worker is refused there with a clear error", async () => {
  // The coordinator's manifest claims x is [1,8]; the stages were built for [1,32].
  const m = structuredClone(branchy.manifest);
  m.inputs[0].shape = [1, 8];
  const p = await deploy({ manifest: m, dir: branchy.dir }, cluster.workers, { token: cluster.token });
  await assert.rejects(p.infer({ x: randomTensor("float32", [1, 8]) }), {
    message:
      /^worker w(0|2) \(stage (0|2)\): request 1 failed: input 'x' is float32 \[1,8\], the stage expects float32 \[1,32\]$/,
  });
  await p.close();
});

test("frames above the limit are refused by the sender and by the receiving worker", async () => {
  const big = writeFixture(reluSpec(4096));
  const feeds = { x: randomTensor("float32", [1, 4096]) };
  // Sender side: the coordinator's own limit.
  const p1 = await deploy(big.dir, [cluster.workers[0]], { token: cluster.token, maxFrameBytes: 8192 });
  await assert.rejects(
    p1.infer(feeds),
    /cannot send input 'x' of request 1: .*frame of 16408 bytes \(tensor 'x'\) exceeds the limit of 8192 bytes; refused/,
  );
  await p1.close();
  // Receiver side: a worker with a 8 KiB limit refuses the 16 KiB frame and closes the connection.
  const small = await startWorker({ name: "small", maxFrameBytes: 8192 });
  const p2 = await deploy(big.dir, [{ name: "small", endpoint: small }]);
  await assert.rejects(p2.infer(feeds), {
    message:
      /^worker small \(stage 0\) at .*: connection lost \(.*peer refused a frame of 16408 bytes exceeds the limit of 8192 bytes; refused\)$/,
  });
  await p2.close();
});

test("a worker killed mid-run ends every request in flight with an explicit error", async () => {
  const own = await startLocalWorkers([{ name: "k0" }, { name: "k1" }, { name: "k2" }]);
  let p: Pipeline | undefined;
  try {
    p = await deploy(branchy.dir, own.workers, { token: own.token, maxInFlight: 6, timeoutMs: 20000 });
    const n = 60;
    let done = 0;
    const results = Array.from({ length: n }, (_, i) =>
      p!.infer({ x: randomTensor("float32", [1, 32], i + 1) }).then(
        (out) => {
          done++;
          return { ok: true as const, out };
        },
        (err: Error) => ({ ok: false as const, err }),
      ),
    );
    // Kill k1 once the pipeline is busy (first result back, others in flight or waiting).
    while (done === 0) await new Promise((r) => setTimeout(r, 1));
    process.kill(own.pids[1], "SIGKILL");
    const settled = await Promise.all(results);
    const failed = settled.filter((s) => !s.ok);
    assert.ok(failed.length > 0, "no request failed although a worker died");
    for (const f of failed) {
      const msg = (f as { err: Error }).err.message;
      assert.doesNotMatch(msg, /deadline/, "a request was silently lost until its deadline");
      assert.match(msg, /worker k1|connection lost|cannot send/);
    }
    assert.equal(settled.length, n);
    assert.ok(
      failed.some((f) =>
        /^worker k1 \(stage 1\) at 127\.0\.0\.1:\d+: connection lost/.test((f as { err: Error }).err.message),
      ),
    );
    await assert.rejects(
      p.infer({ x: randomTensor("float32", [1, 32]) }),
      /worker k1 \(stage 1\).*connection lost/,
    );
    assert.equal(p.stats().inFlight, 0);
  } finally {
    await p?.close();
    await own.stop();
  }
  for (const pid of own.pids) assert.equal(alive(pid), false);
});

test("a request past its deadline fails naming the stage it waits for", async () => {
  const p = await deploy(gather.dir, cluster.workers.slice(0, 2), { token: cluster.token });
  // Worker w1 (stage 1) is stopped, so its output cannot arrive before the deadline.
  process.kill(cluster.pids[1], "SIGSTOP");
  try {
    await assert.rejects(
      p.infer(
        { x: randomTensor("float32", [1, 16]), idx: new ort.Tensor("int64", new BigInt64Array([0n]), [1]) },
        { deadlineMs: 100 },
      ),
      {
        message:
          /^request \d+: no result within the deadline of 100 ms \(waiting for 'g' from stage 1 on worker w1\)$/,
      },
    );
  } finally {
    process.kill(cluster.pids[1], "SIGCONT");
  }
  // The cancelled request leaves the pipeline usable.
  const ok = await p.infer({
    x: randomTensor("float32", [1, 16]),
    idx: new ort.Tensor("int64", new BigInt64Array([0n]), [1]),
  });
  assert.deepEqual(ok.g.dims, [1, 1]);
  await p.close();
});
