import assert from "node:assert/strict";
import { test } from "node:test";
import type { Manifest } from "../src/export/manifest.js";
import { Pipeline, type PipelineLink } from "../src/runtime/coordinator/pipeline.js";
import { armDeadline, WaiterMap, waiter } from "../src/runtime/deadline.js";
import { acceptHandshake, connectWorker } from "../src/runtime/transport/handshake.js";
import type { StatsReplyMsg } from "../src/runtime/transport/protocol.js";
import { makeTransport } from "../src/runtime/transport/transports.js";
import { VERSION } from "../src/version.js";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("armDeadline fires once at the deadline, or on abort, and never after disarm", async () => {
  const fired: string[] = [];
  armDeadline(20, (c) => fired.push(c.kind));
  const disarm = armDeadline(20, (c) => fired.push(`late ${c.kind}`));
  disarm();
  const ac = new AbortController();
  armDeadline(
    10_000,
    (c) => fired.push(c.kind === "aborted" ? `aborted ${String(c.reason)}` : c.kind),
    ac.signal,
  );
  ac.abort("stop");
  ac.abort("again");
  await wait(60);
  assert.deepEqual(fired, ["aborted stop", "deadline"]);
  const pre = new AbortController();
  pre.abort("before");
  let at = "";
  armDeadline(
    10,
    (c) => {
      at = c.kind;
    },
    pre.signal,
  );
  assert.equal(at, "aborted", "an already aborted signal fires at once");
});

test("waiter: resolves with the reply, rejects at the deadline or on abort, restarts when rearmed", async () => {
  const ok = waiter<number>({ ms: 1000, timeout: () => new Error("late") });
  ok.resolve(7);
  ok.reject(new Error("ignored"));
  assert.equal(await ok.promise, 7);
  assert.equal(ok.settled, true);

  const late = waiter<number>({ ms: 10, timeout: () => new Error("no reply in 10 ms") });
  await assert.rejects(late.promise, /no reply in 10 ms/);
  late.resolve(1);

  const ac = new AbortController();
  const aborted = waiter<number>({ ms: 10_000, signal: ac.signal, timeout: () => new Error("x") });
  ac.abort(new Error("user"));
  await assert.rejects(aborted.promise, /aborted \(user\)/);

  // Rearmed every 30 ms for 150 ms, a 60 ms deadline never passes; then it does, with the newer error.
  const slow = waiter<number>({ ms: 60, timeout: () => new Error("first") });
  for (let i = 0; i < 5; i++) {
    await wait(30);
    slow.rearm(60, () => new Error("after the last chunk"));
  }
  assert.equal(slow.settled, false);
  await assert.rejects(slow.promise, /after the last chunk/);

  let settledCalls = 0;
  const counted = waiter<void>({ ms: 5, timeout: () => new Error("t"), onSettle: () => settledCalls++ });
  await counted.promise.catch(() => {});
  counted.resolve();
  assert.equal(settledCalls, 1);
});

test("WaiterMap: a reply settles only its own key; a timed-out key is forgotten", async () => {
  const m = new WaiterMap<number, string>();
  const a = m.add(1, { ms: 10, timeout: () => new Error("1 timed out") });
  const b = m.add(2, { ms: 1000, timeout: () => new Error("2 timed out") });
  assert.throws(() => m.add(2, { ms: 1, timeout: () => new Error("") }), /already waiting for 2/);
  await assert.rejects(a.promise, /1 timed out/);
  assert.equal(m.resolve(1, "late reply to 1"), false, "the late reply finds nobody");
  assert.equal(m.resolve(2, "reply to 2"), true);
  assert.equal(await b.promise, "reply to 2");
  assert.equal(m.size, 0);
  const c = m.add(3, { ms: 1000, timeout: () => new Error("") });
  m.rejectAll(new Error("gone"));
  await assert.rejects(c.promise, /gone/);
  assert.equal(m.size, 0);
});

/**
 * A peer that speaks the worker's side of the protocol and does not answer the first `stats` request (a
 * reply lost, as one from a worker whose connection is being replaced is), then answers each later one with
 * its request id. With the former first-in-first-out waiters, the timed-out first waiter took the second
 * reply and the second request timed out too.
 */
test("a stats request that timed out does not swallow the reply to the next one", async (t) => {
  const transport = makeTransport("tcp");
  let asked = 0;
  const listener = await transport.listen("127.0.0.1", 0, (conn) => {
    acceptHandshake(conn, {
      token: "",
      version: VERSION,
      welcome: () => ({
        t: "welcome",
        version: VERSION,
        name: "w0",
        threads: 1,
        pid: process.pid,
        maxFrameBytes: 1 << 20,
      }),
      admit: () => undefined,
      mayTry: () => ({ ok: true }),
      onWrongToken: () => {},
      done: (r) => {
        if (!("hello" in r)) return;
        conn.onFrame((f) => {
          if (f.type !== "control" || f.msg.t !== "stats") return;
          asked++;
          if (asked === 1) return;
          const reply: StatsReplyMsg = {
            t: "stats-reply",
            worker: `w0 answer ${asked}`,
            stages: [],
            cpuMs: 0,
            receiveBuffersReused: 0,
            readsPaused: 0,
          };
          void conn.send({ type: "control", requestId: f.requestId, msg: { ...reply } });
        });
      },
    });
  });
  t.after(() => listener.close());
  const endpoint = `127.0.0.1:${listener.port}`;
  const { conn, welcome } = await connectWorker(transport, endpoint, {
    role: "coordinator",
    from: "coordinator",
  });
  const link: PipelineLink = {
    name: "w0",
    endpoint,
    conn,
    stages: [],
    pid: welcome.pid,
    threads: welcome.threads,
    statsWaiters: new WaiterMap(),
  };
  const manifest: Manifest = { version: 1, model: "none", inputs: [], outputs: [], tensors: {}, stages: [] };
  const pipeline = new Pipeline(manifest, new Map([["w0", link]]), [], 1, 1000);
  t.after(() => conn.close());
  await assert.rejects(pipeline.workerStats(200), /worker w0 at .*: no stats within 200 ms/);
  const [second] = await pipeline.workerStats(2000);
  assert.equal(second.worker, "w0 answer 2");
  const [third] = await pipeline.workerStats(2000);
  assert.equal(third.worker, "w0 answer 3");
  assert.equal(link.statsWaiters.size, 0);
});
