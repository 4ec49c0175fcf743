import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { StringStringEntryProtoSchema, TensorProto_DataLocation } from "onnx-buf";
import { decodeModel, encodeModel } from "../src/onnx/model-io.js";
import { ort, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import {
  type ControlMessage,
  decodeFrame,
  encodeFrame,
  type Frame,
  frameSize,
} from "../src/runtime/transport/frame.js";
import { connectWorker } from "../src/runtime/transport/handshake.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import type { Pipeline } from "../src/runtime/coordinator/pipeline.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";
import { VERSION } from "../src/version.js";
import { branchySpec, type Fixture, gatherSpec, writeFixture } from "./runtime-fixture.js";

/**
 * Hostile peers against real worker processes on 127.0.0.1. The attackers connect from 127.0.0.2 (Linux routes
 * all of 127/8 to the loopback device), so per-address limits fall on them and not on the real coordinator.
 */
const ATTACKER = "127.0.0.2";
/** The stated bound: a worker under every attack below stays within this much of its RSS at start. */
const RSS_GROWTH_BOUND = 96 * 2 ** 20;

let cluster: LocalCluster;
let gather: Fixture;
let branchy: Fixture;
let pipeline: Pipeline;
const rssAtStart: number[] = [];

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const hostPort = (endpoint: string) => {
  const i = endpoint.lastIndexOf(":");
  return { host: endpoint.slice(0, i), port: Number(endpoint.slice(i + 1)) };
};

/** A peer that speaks raw bytes and frames over TCP, from the attacker's address. */
class Raw {
  readonly frames: Frame[] = [];
  readonly t0 = performance.now();
  /** ms from open to close, once closed. */
  closedAfter?: number;
  readonly closed: Promise<number>;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 4) {
        const len = this.buf.readUInt32LE(0);
        if (this.buf.length < 4 + len) break;
        this.frames.push(decodeFrame(new Uint8Array(this.buf.subarray(4, 4 + len))));
        this.buf = this.buf.subarray(4 + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.closedAfter = performance.now() - this.t0;
        for (const w of this.waiters.splice(0)) w();
        resolve(this.closedAfter);
      }),
    );
  }

  static open(endpoint: string, localAddress = ATTACKER): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ ...hostPort(endpoint), localAddress });
      s.once("connect", () => resolve(new Raw(s)));
      s.once("error", reject);
    });
  }

  send(frame: Frame): void {
    const parts = encodeFrame(frame);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(frameSize(parts), 0);
    if (!this.socket.destroyed) this.socket.write(Buffer.concat([head, ...parts]));
  }

  control(msg: ControlMessage, payload?: Uint8Array): void {
    this.send({ type: "control", requestId: 0, msg, ...(payload ? { payload } : {}) });
  }

  /** The next control message with tag `t` (or null once closed / after `ms`). */
  async next(t: string, ms = 3000): Promise<Record<string, unknown> | null> {
    const deadline = performance.now() + ms;
    for (;;) {
      const i = this.frames.findIndex((f) => f.type === "control" && f.msg.t === t);
      if (i >= 0) {
        const f = this.frames.splice(i, 1)[0];
        return f.type === "control" ? f.msg : null;
      }
      if (this.closedAfter !== undefined || performance.now() > deadline) return null;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Gives a worker time to see a closed coordinator connection (a new coordinator before that is busy). */
const settle = () => new Promise((r) => setTimeout(r, 100));

/** The proof handshake.ts documents, computed here independently of it. */
function proofOf(token: string, side: string, h: Record<string, unknown>, serverNonce: string): string {
  const transcript = JSON.stringify([
    `cleave-${side}`,
    h.version,
    h.role,
    h.from,
    h.deployment ?? "",
    h.nonce,
    serverNonce,
  ]);
  return createHmac("sha256", token).update(transcript).digest("hex");
}

/** Performs the handshake on a raw connection; resolves to the worker's last answer ("welcome" or a reject). */
async function handshake(
  raw: Raw,
  token: string,
  hello: Record<string, unknown> = {},
): Promise<{ answer: Record<string, unknown> | null; sent: Frame[] }> {
  const h = {
    t: "hello",
    version: VERSION,
    role: "coordinator",
    from: "mallory",
    nonce: randomBytes(32).toString("hex"),
    ...hello,
  };
  const sent: Frame[] = [{ type: "control", requestId: 0, msg: h }];
  raw.send(sent[0]);
  const c = await raw.next("challenge");
  if (c === null) return { answer: await raw.next("reject", 500), sent };
  const auth: Frame = {
    type: "control",
    requestId: 0,
    msg: { t: "auth", proof: proofOf(token, "client", h, String(c.nonce)) },
  };
  sent.push(auth);
  raw.send(auth);
  const deadline = performance.now() + 3000;
  while (performance.now() < deadline) {
    const f = raw.frames.find((x) => x.type === "control" && /welcome|reject/.test(x.msg.t));
    if (f?.type === "control") return { answer: f.msg, sent };
    if (raw.closedAfter !== undefined) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { answer: null, sent };
}

const feeds = (i: number) => ({
  x: randomTensor("float32", [1, 16], 3),
  idx: new ort.Tensor("int64", new BigInt64Array([BigInt(i % 16)]), [1]),
});

/** Runs `n` requests through the real pipeline; every one must succeed with the right value. */
async function servesCorrectly(n: number): Promise<void> {
  const x = randomTensor("float32", [1, 16], 3).data as Float32Array;
  for (let i = 0; i < n; i++) {
    const out = await pipeline.infer(feeds(i));
    assert.equal((out.g.data as Float32Array)[0], Math.max(0, x[i % 16]));
  }
}

/** Stage 0 of branchy, sent by hand: bytes, and a load message for them. */
function stageLoad(bytes: Uint8Array, extra: Record<string, unknown> = {}) {
  return {
    t: "load",
    deployment: "d-raw",
    stage: 0,
    worker: "w2",
    file: "s0.onnx",
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.byteLength,
    inputs: [{ name: "x", dtype: "float32", shape: [1, 32] }],
    outputs: ["b", "c"],
    routes: { b: [{ to: "coordinator" }], c: [{ to: "coordinator" }] },
    workers: [{ worker: "w2", endpoint: cluster.workers[2].endpoint }],
    ...extra,
  };
}

before(async () => {
  gather = writeFixture(gatherSpec(16));
  branchy = writeFixture(branchySpec(32));
  cluster = await startLocalWorkers([{ name: "w0" }, { name: "w1" }, { name: "w2" }]);
  for (const pid of cluster.pids) rssAtStart.push(rss(pid));
  pipeline = await deploy(gather.dir, cluster.workers.slice(0, 2), { token: cluster.token });
  await servesCorrectly(4);
});

after(async () => {
  await pipeline?.close();
  const pids = cluster.pids;
  await cluster.stop();
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});

test("random bytes and huge length prefixes before the handshake are cut off without allocating", async (t) => {
  const ep = cluster.workers[0].endpoint;
  const before = rss(cluster.pids[0]);
  const conns: Raw[] = [];
  // 4 GB and 200 MiB announced lengths (as the issue's attack), then random bytes of random lengths.
  for (const len of [0xffffffff, 200 * 2 ** 20, 200 * 2 ** 20, 200 * 2 ** 20, 200 * 2 ** 20, 200 * 2 ** 20]) {
    const r = await Raw.open(ep);
    const b = Buffer.alloc(4 + 1024);
    b.writeUInt32LE(len, 0);
    r.socket.write(b);
    conns.push(r);
  }
  for (let i = 0; i < 20; i++) {
    const r = await Raw.open(ep);
    r.socket.write(randomBytes(1 + ((i * 997) % 8192)));
    conns.push(r);
  }
  const closedAfter = await Promise.all(conns.map((c) => c.closed));
  // Oversized prefixes close at once; random bytes at once or, at the latest, at the 2 s handshake deadline.
  for (const ms of closedAfter.slice(0, 6)) assert.ok(ms < 1000, `a huge prefix was held ${ms} ms`);
  for (const ms of closedAfter) assert.ok(ms < 3500, `random bytes were held ${ms} ms`);
  t.diagnostic(
    `huge prefixes closed after max ${Math.max(...closedAfter.slice(0, 6)).toFixed(0)} ms, random bytes after max ${Math.max(...closedAfter).toFixed(0)} ms; RSS ${(before / 2 ** 20).toFixed(0)} -> ${(rss(cluster.pids[0]) / 2 ** 20).toFixed(0)} MiB`,
  );
  assert.ok(rss(cluster.pids[0]) - before < 32 * 2 ** 20, "RSS grew by more than 32 MiB");
  await servesCorrectly(4);
});

test("a slow peer (a byte a second) is cut off at the handshake deadline", async (t) => {
  const r = await Raw.open(cluster.workers[1].endpoint);
  const hello = encodeFrame({
    type: "control",
    requestId: 0,
    msg: { t: "hello", version: VERSION, role: "probe", from: "slow", nonce: "0".repeat(64) },
  });
  const bytes = Buffer.concat([Buffer.alloc(4), ...hello]);
  bytes.writeUInt32LE(frameSize(hello), 0);
  let i = 0;
  const drip = setInterval(() => {
    if (i < bytes.length && !r.socket.destroyed) r.socket.write(bytes.subarray(i, ++i));
  }, 1000);
  const ms = await r.closed;
  clearInterval(drip);
  assert.ok(ms > 1500 && ms < 3500, `closed after ${ms} ms (deadline 2000)`);
  assert.ok(i <= 4, `${i} bytes were taken`);
  t.diagnostic(`slow peer closed after ${ms.toFixed(0)} ms, ${i} bytes sent`);
});

test("200 connections held open (reopened as soon as closed) for 10 s do not keep a real client out", async (t) => {
  const ep = cluster.workers[0].endpoint;
  const before = rss(cluster.pids[0]);
  let stop = false;
  let opened = 0;
  let closed = 0;
  const hold = async () => {
    while (!stop) {
      const r = await Raw.open(ep).catch(() => undefined);
      if (!r) continue;
      opened++;
      await Promise.race([r.closed, new Promise((res) => setTimeout(res, 10_500))]);
      if (r.closedAfter !== undefined) closed++;
      r.close();
      // The attacker reopens half a second later (a tighter loop only spends this machine's two cores).
      await new Promise((res) => setTimeout(res, 500));
    }
  };
  const holders = Array.from({ length: 200 }, hold);
  const t0 = performance.now();
  let served = 0;
  let redeployed = 0;
  while (performance.now() - t0 < 10_000) {
    await servesCorrectly(5);
    served += 5;
    if (redeployed === 0 && performance.now() - t0 > 4000) {
      // A new coordinator connects (handshakes with both workers) during the flood.
      await pipeline.close();
      pipeline = await deploy(gather.dir, cluster.workers.slice(0, 2), { token: cluster.token });
      redeployed++;
    }
  }
  stop = true;
  await Promise.all(holders);
  t.diagnostic(
    `flood: ${opened} idle connections opened, ${closed} closed by the worker; ${served} requests served; RSS ${(before / 2 ** 20).toFixed(0)} -> ${(rss(cluster.pids[0]) / 2 ** 20).toFixed(0)} MiB`,
  );
  assert.equal(redeployed, 1);
  assert.ok(served >= 20, `only ${served} requests served during the flood`);
  // Every idle connection was closed by the worker (eviction or the deadline), none held for the 10 s.
  assert.ok(
    opened >= 200 && closed === opened,
    `${closed} of ${opened} idle connections closed by the worker`,
  );
  // Serving ~18,000 real requests during the flood grows the heap too (+34 MiB seen once): the bound is for
  // memory held per attacking connection, which would be thousands of MiB unbounded.
  assert.ok(rss(cluster.pids[0]) - before < 64 * 2 ** 20, "RSS grew by more than 64 MiB");
});

test("wrong tokens in a loop are throttled; a replayed handshake is refused; the real client is not slowed", async (t) => {
  const ep = cluster.workers[1].endpoint;
  let checked = 0;
  let throttled = 0;
  const t0 = performance.now();
  // Eight attackers in parallel, as fast as the worker answers, for 3 s.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() - t0 < 3000) {
        const r = await Raw.open(ep);
        const { answer } = await handshake(r, "not-the-token", { role: "probe" });
        if (answer?.reason === "token") checked++;
        else if (answer?.reason === "busy") throttled++;
        r.close();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  t.diagnostic(
    `wrong tokens: ${checked} checked (${(checked / seconds).toFixed(1)}/s), ${throttled} refused busy (${(throttled / seconds).toFixed(0)}/s) in ${seconds.toFixed(1)} s`,
  );
  // Back-off 50, 100, 200, ... 2000 ms: about 7 proofs checked in 3 s (the issue measured 4,000 a second).
  assert.ok(checked / seconds < 4, `${checked} wrong tokens checked in ${seconds.toFixed(1)} s`);
  assert.ok(throttled > checked, `${throttled} throttled, ${checked} checked`);
  // The real coordinator, from another address, is served at once.
  const q0 = performance.now();
  const { conn } = await connectWorker(new TcpTransport(), ep, {
    token: cluster.token,
    role: "probe",
    from: "test",
  });
  assert.ok(performance.now() - q0 < 1000);
  conn.close();
  // Replay: a recorded, valid hello + auth sent again on a new connection fails (the worker's nonce is new).
  const w2 = cluster.workers[2].endpoint;
  const a = await Raw.open(w2, "127.0.0.1");
  const rec = await handshake(a, cluster.token, { role: "probe" });
  assert.equal(rec.answer?.t, "welcome");
  a.close();
  const b = await Raw.open(w2, "127.0.0.3");
  for (const f of rec.sent) b.send(f);
  assert.equal((await b.next("reject"))?.reason, "token");
  await b.closed;
});

test("a worker that cannot prove the token is refused by the client, and the token never crosses the wire", async () => {
  // A fake worker records what a client sends and answers with a welcome it cannot prove.
  const seen: string[] = [];
  const server = net.createServer((s) => {
    const raw = new Raw(s);
    void (async () => {
      const h = await raw.next("hello");
      seen.push(JSON.stringify(h));
      raw.control({ t: "challenge", version: VERSION, nonce: "ab".repeat(32) });
      const a = await raw.next("auth");
      seen.push(JSON.stringify(a));
      raw.control({
        t: "welcome",
        version: VERSION,
        name: "fake",
        threads: 1,
        pid: 1,
        maxFrameBytes: 1 << 20,
        proof: proofOf("guess", "worker", h ?? {}, "ab".repeat(32)),
      });
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await assert.rejects(
    connectWorker(new TcpTransport(), `127.0.0.1:${port}`, {
      token: cluster.token,
      role: "coordinator",
      from: "test",
    }),
    { message: /does not prove it holds the token/ },
  );
  server.close();
  assert.equal(seen.length, 2);
  for (const m of seen) assert.ok(!m.includes(cluster.token), "the token was sent");
});

test("malformed and role-forging control messages close that connection only; the worker keeps serving", async () => {
  const w2 = cluster.workers[2].endpoint;
  const expectClosed = async (hello: Record<string, unknown>, bad: Frame) => {
    const r = await Raw.open(w2, "127.0.0.1");
    const { answer } = await handshake(r, cluster.token, hello);
    assert.equal(answer?.t, "welcome", JSON.stringify(answer));
    r.send(bad);
    const ms = await Promise.race([r.closed, new Promise<number>((res) => setTimeout(() => res(-1), 3000))]);
    await settle();
    assert.ok(ms >= 0, `still open after ${JSON.stringify(bad.type === "control" ? bad.msg : bad.name)}`);
  };
  const model = readFileSync(join(branchy.dir, "stage_0.onnx"));
  const load = stageLoad(model);
  const c = (msg: Record<string, unknown>): Frame => ({
    type: "control",
    requestId: 0,
    msg: msg as ControlMessage,
  });
  const coordinator = { role: "coordinator" };
  for (const bad of [
    c({ ...load, outputs: undefined }),
    c({ ...load, inputs: "x" }),
    c({ ...load, inputs: [null] }),
    c({ ...load, threads: 1_000_000 }),
    c({ ...load, token: cluster.token }),
    c({ ...load, sessionOptions: { customOpsLibrary: "/tmp/evil.so" } }),
    c({
      ...load,
      routes: { b: [{ to: "stage", stage: 1, replicas: [{ worker: "evil", endpoint: "10.0.0.1:22" }] }] },
    }),
    c({ t: "load-chunk", stage: "0", part: "model", offset: 0 }),
    c({ t: "what" }),
  ])
    await expectClosed(coordinator, bad);
  // A peer may only send tensors (for a deployment that names it) and pings; a probe only pings and sinks.
  await expectClosed({ role: "peer", deployment: "d-raw" }, c(load));
  await expectClosed({ role: "peer", deployment: "d-raw" }, c({ t: "cancel" }));
  await expectClosed(
    { role: "probe" },
    { type: "tensor", requestId: 1, name: "x", dtype: "float32", shape: [1], data: new Uint8Array(4) },
  );
  // A real client learns why in one line: the worker sends a close notice naming the field.
  const { conn } = await connectWorker(new TcpTransport(), w2, {
    token: cluster.token,
    role: "coordinator",
    from: "test",
  });
  const why = new Promise<string>((res) => conn.onClose((err) => res(String(err?.message))));
  await conn.send(c({ ...load, inputs: [null] }));
  assert.match(
    await why,
    /^127\.0\.0\.1:\d+: worker w2 closed the connection: malformed load\.inputs\.0: .+$/,
  );
  await settle();
  // An unknown role in the hello is refused before anything is accepted.
  const u = await Raw.open(w2, "127.0.0.1");
  assert.equal((await handshake(u, cluster.token, { role: "admin" })).answer?.reason, "protocol");
  // threads within the schema but above this machine's CPUs: a load error, the connection stays.
  const r = await Raw.open(w2, "127.0.0.1");
  assert.equal((await handshake(r, cluster.token)).answer?.t, "welcome");
  r.control({ ...load, threads: 4096 });
  assert.match(String((await r.next("error"))?.message), /threads 4096 is more than this worker's \d+ CPUs/);
  r.close();
  await settle();
  // A forged peer on the live pipeline's worker: its tensors are refused, every real request still succeeds.
  const f = await Raw.open(cluster.workers[1].endpoint, "127.0.0.1");
  assert.equal(
    (await handshake(f, cluster.token, { role: "peer", from: "w0", deployment: "guessed" })).answer?.t,
    "welcome",
  );
  const runs = servesCorrectly(10);
  for (let id = 1; id <= 20; id++)
    f.send({
      type: "tensor",
      requestId: id,
      name: "a",
      dtype: "float32",
      shape: [1, 16],
      data: new Uint8Array(64),
    });
  await runs;
  await f.closed;
});

test("a stage model whose external data names a file of the worker's machine is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-hostile-"));
  try {
    const secret = join(dir, "secret.bin");
    writeFileSync(secret, randomBytes(32 * 32 * 4));
    const bytesWith = (location: string) => {
      const m = decodeModel(readFileSync(join(branchy.dir, "stage_0.onnx")));
      const w = m.graph!.initializer.find((t) => t.name === "W1")!;
      w.rawData = new Uint8Array(0);
      w.dataLocation = TensorProto_DataLocation.EXTERNAL;
      w.externalData = [
        create(StringStringEntryProtoSchema, { key: "location", value: location }),
        create(StringStringEntryProtoSchema, { key: "offset", value: "0" }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(32 * 32 * 4) }),
      ];
      return encodeModel(m);
    };
    for (const location of [secret, "secret.bin", "../../etc/passwd"]) {
      const r = await Raw.open(cluster.workers[2].endpoint, "127.0.0.1");
      assert.equal((await handshake(r, cluster.token)).answer?.t, "welcome");
      const bytes = bytesWith(location);
      r.control(stageLoad(bytes));
      r.control({ t: "load-chunk", stage: 0, part: "model", offset: 0 }, bytes);
      const err = await r.next("error", 10_000);
      assert.equal(await r.next("loaded", 10), null);
      assert.match(String(err?.message), /refers to external data '.+', which was not sent with the stage/);
      r.close();
      await settle();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("partial requests are bounded: past 256 waiting for their other input, a request fails at once", async () => {
  const ep = cluster.workers[2].endpoint;
  const coord = await Raw.open(ep, "127.0.0.1");
  assert.equal((await handshake(coord, cluster.token)).answer?.t, "welcome");
  // Stage 1 of the gather fixture reads `a` and `idx`; only `a` is ever sent.
  const model = readFileSync(join(gather.dir, "stage_1.onnx"));
  coord.control(
    stageLoad(model, {
      file: "g1.onnx",
      inputs: [
        { name: "a", dtype: "float32", shape: [1, 16] },
        { name: "idx", dtype: "int64", shape: [1] },
      ],
      outputs: ["g"],
      routes: { g: [{ to: "coordinator" }] },
    }),
  );
  coord.control({ t: "load-chunk", stage: 0, part: "model", offset: 0 }, model);
  assert.ok(await coord.next("loaded", 10_000), "the stage did not load");
  for (let id = 1; id <= 300; id++)
    coord.send({
      type: "tensor",
      requestId: id,
      name: "a",
      dtype: "float32",
      shape: [1, 16],
      data: new Uint8Array(64),
    });
  const errors: string[] = [];
  for (let e = await coord.next("error"); e !== null; e = await coord.next("error", 500))
    errors.push(String(e.message));
  assert.equal(errors.length, 300 - 256);
  assert.ok(
    errors.every((m) => m === "256 requests already wait for inputs of this stage"),
    errors[0],
  );
  coord.close();
  await settle();
});

test("a sender faster than the stage is paused (TCP backpressure), not buffered; every request still completes", async () => {
  const ep = cluster.workers[2].endpoint;
  const coord = await Raw.open(ep, "127.0.0.1");
  assert.equal((await handshake(coord, cluster.token)).answer?.t, "welcome");
  const model = readFileSync(join(branchy.dir, "stage_0.onnx"));
  coord.control(stageLoad(model));
  coord.control({ t: "load-chunk", stage: 0, part: "model", offset: 0 }, model);
  assert.ok(await coord.next("loaded", 10_000), "the stage did not load");
  // 300 requests in one write: all arrive in a few reads, far faster than one run per event-loop turn.
  const frames = Array.from({ length: 300 }, (_, i) => {
    const parts = encodeFrame({
      type: "tensor",
      requestId: i + 1,
      name: "x",
      dtype: "float32",
      shape: [1, 32],
      data: new Uint8Array(128),
    });
    const head = Buffer.alloc(4);
    head.writeUInt32LE(frameSize(parts), 0);
    return Buffer.concat([head, ...parts]);
  });
  coord.socket.write(Buffer.concat(frames));
  const deadline = performance.now() + 20_000;
  const outputs = () => coord.frames.filter((f) => f.type === "tensor").length;
  while (outputs() < 600 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(outputs(), 600, "every request's two outputs");
  coord.control({ t: "stats" });
  const stats = await coord.next("stats-reply");
  assert.ok(Number(stats?.readsPaused) >= 1, `reads paused ${stats?.readsPaused} times`);
  coord.close();
  await settle();
});

test("10,000 mutated frames after the handshake crash nothing; RSS stays within the bound", async (t) => {
  const ep = cluster.workers[2].endpoint;
  // A raw coordinator deploys one stage, and names a peer, which then sends the mutated frames.
  const coord = await Raw.open(ep, "127.0.0.1");
  assert.equal((await handshake(coord, cluster.token)).answer?.t, "welcome");
  const model = readFileSync(join(branchy.dir, "stage_0.onnx"));
  coord.control(
    stageLoad(model, {
      workers: [
        { worker: "w2", endpoint: ep },
        { worker: "p", endpoint: "127.0.0.1:1" },
      ],
    }),
  );
  coord.control({ t: "load-chunk", stage: 0, part: "model", offset: 0 }, model);
  assert.ok(await coord.next("loaded", 10_000), "the stage did not load");
  const good: Frame[] = [
    { type: "tensor", requestId: 7, name: "x", dtype: "float32", shape: [1, 32], data: new Uint8Array(128) },
    {
      type: "tensor",
      requestId: 8,
      name: "x",
      dtype: "float32",
      shape: [1, 32],
      data: new Uint8Array(128),
      path: new Uint8Array([0]),
    },
    { type: "control", requestId: 0, msg: { t: "ping" } },
  ];
  const encoded = good.map((f) => Buffer.concat(encodeFrame(f)));
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const mutate = (): Buffer => {
    const kind = rand(4);
    if (kind === 0) return randomBytes(1 + rand(600));
    const b = Buffer.from(encoded[rand(encoded.length)]);
    if (kind === 1) return b.subarray(0, rand(b.length));
    for (let k = 1 + rand(6); k > 0; k--) b[rand(b.length)] = rand(256);
    return b;
  };
  let sent = 0;
  let connections = 0;
  const t0 = performance.now();
  while (sent < 10_000 && performance.now() - t0 < 30_000) {
    const p = await Raw.open(ep, "127.0.0.1");
    connections++;
    if (
      (await handshake(p, cluster.token, { role: "peer", from: "p", deployment: "d-raw" })).answer?.t !==
      "welcome"
    )
      assert.fail("the worker refused the named peer");
    // A burst of frames per connection; the first malformed one closes it, the rest are never read.
    for (let k = 0; k < 50 && sent < 10_000; k++, sent++) {
      const body = mutate();
      const head = Buffer.alloc(4);
      head.writeUInt32LE(body.length, 0);
      p.socket.write(Buffer.concat([head, body]));
    }
    p.socket.end();
    await Promise.race([p.closed, new Promise((r) => setTimeout(r, 2000))]);
    p.close();
  }
  assert.equal(sent, 10_000);
  for (const pid of cluster.pids) assert.ok(alive(pid), `worker ${pid} died`);
  // The raw coordinator's connection and stage survived the peer's garbage.
  coord.control({ t: "ping" });
  assert.ok(await coord.next("pong"), `no pong after ${connections} connections of garbage`);
  coord.close();
  t.diagnostic(
    `${sent} frames over ${connections} connections in ${((performance.now() - t0) / 1000).toFixed(1)} s; RSS MiB start -> end: ${cluster.pids.map((pid, i) => `${(rssAtStart[i] / 2 ** 20).toFixed(0)}->${(rss(pid) / 2 ** 20).toFixed(0)}`).join(", ")}`,
  );
  cluster.pids.forEach((pid, i) => {
    const grew = rss(pid) - rssAtStart[i];
    assert.ok(grew < RSS_GROWTH_BOUND, `worker ${i}: RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  });
  await servesCorrectly(10);
});
