import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ControlFrame, Frame, TensorFrame } from "../src/runtime/transport/frame.js";
import { decodeFrame, encodeFrame, frameTensor, tensorFrame } from "../src/runtime/transport/frame.js";
import type {
  Connection,
  Listener,
  Transport,
  TransportOptions,
} from "../src/runtime/transport/transport.js";
import { makeTransport, TRANSPORT_NAMES } from "../src/runtime/transport/transports.js";
import { ort } from "../src/onnx/ort.js";

/** A connected pair over a real socket on 127.0.0.1:0. */
async function pair(
  t: Transport,
  client?: Transport,
): Promise<{ server: Connection; client: Connection; listener: Listener; close(): Promise<void> }> {
  let accept!: (c: Connection) => void;
  const accepted = new Promise<Connection>((r) => {
    accept = r;
  });
  const listener = await t.listen("127.0.0.1", 0, accept);
  const c = await (client ?? t).connect(`127.0.0.1:${listener.port}`);
  const s = await accepted;
  return {
    server: s,
    client: c,
    listener,
    close: async () => {
      c.close();
      await listener.close();
    },
  };
}

/** Collects `n` frames from a connection. */
function collect(conn: Connection, n: number): Promise<Frame[]> {
  const got: Frame[] = [];
  return new Promise((resolve) => {
    conn.onFrame((f) => {
      got.push(f);
      if (got.length === n) resolve(got);
    });
  });
}

function closeReason(conn: Connection): Promise<Error | undefined> {
  return new Promise((resolve) => conn.onClose(resolve));
}

test("frame codec: tensor and control frames round-trip, header padded to 8 bytes", () => {
  const t: TensorFrame = {
    type: "tensor",
    requestId: 0xfffffffe,
    epoch: 0xfffffff0,
    name: "läyer/out:0",
    dtype: "int64",
    shape: [2, 3],
    data: new Uint8Array(new BigInt64Array([1n, -2n, 3n, 4n, 5n, -6n]).buffer),
  };
  const parts = encodeFrame(t);
  assert.equal(parts[0].byteLength % 8, 0);
  const buf = new Uint8Array(parts[0].byteLength + parts[1].byteLength);
  buf.set(parts[0]);
  buf.set(parts[1], parts[0].byteLength);
  const back = decodeFrame(buf) as TensorFrame;
  assert.deepEqual({ ...back, data: [...back.data] }, { ...t, data: [...t.data] });
  assert.deepEqual(frameTensor(back).data, new BigInt64Array([1n, -2n, 3n, 4n, 5n, -6n]));

  const c: ControlFrame = {
    type: "control",
    requestId: 7,
    msg: { t: "hello", x: [1, 2] },
    payload: new Uint8Array([9, 8]),
  };
  const cp = encodeFrame(c);
  const cbuf = Buffer.concat(cp);
  const cback = decodeFrame(cbuf) as ControlFrame;
  assert.deepEqual(cback.msg, c.msg);
  assert.equal(cback.epoch, 0, "a frame without an epoch is epoch 0");
  const e = decodeFrame(Buffer.concat(encodeFrame({ ...c, epoch: 3 }))) as ControlFrame;
  assert.equal(e.epoch, 3);
  assert.deepEqual([...(cback.payload ?? [])], [9, 8]);
});

test("frame codec: malformed frames and wrong data lengths are refused", () => {
  assert.throws(() => decodeFrame(new Uint8Array([1, 0, 0])), /malformed frame/);
  assert.throws(
    () => decodeFrame(new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
    /unknown frame type 7/,
  );
  const parts = encodeFrame({
    type: "tensor",
    requestId: 1,
    name: "x",
    dtype: "float32",
    shape: [2],
    data: new Uint8Array(8),
  });
  const short = Buffer.concat([parts[0], new Uint8Array(4)]);
  assert.throws(() => decodeFrame(short), /has 4 data bytes, shape \[2\] needs 8/);
  assert.throws(
    () =>
      encodeFrame({
        type: "tensor",
        requestId: 1,
        name: "x",
        dtype: "float32",
        shape: [3],
        data: new Uint8Array(8),
      }),
    /8 data bytes for shape \[3\]/,
  );
});

for (const name of TRANSPORT_NAMES) {
  describe(`transport compliance: ${name}`, () => {
    const make = (o: TransportOptions = {}) => makeTransport(name, o);

    test("listens on port 0 and reports the real port", async () => {
      const l = await make().listen("127.0.0.1", 0, () => {});
      assert.equal(l.host, "127.0.0.1");
      assert.ok(l.port > 0);
      await l.close();
    });

    test("tensors of every dtype and rank cross both ways intact", async () => {
      const p = await pair(make());
      const cases: ort.Tensor[] = [
        new ort.Tensor(
          "float32",
          Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3),
          [2, 3, 4],
        ),
        new ort.Tensor("int64", new BigInt64Array([5n, -9n]), [2]),
        new ort.Tensor("int32", new Int32Array([7]), []),
        new ort.Tensor("uint8", new Uint8Array([1, 2, 3]), [3, 1]),
        new ort.Tensor("bool", new Uint8Array([1, 0]), [2]),
        new ort.Tensor("float64", new Float64Array([Math.PI]), [1]),
        new ort.Tensor("float32", new Float32Array(0), [0, 4]),
      ];
      const atServer = collect(p.server, cases.length);
      for (const [i, t] of cases.entries()) await p.client.send(tensorFrame(i + 1, `t${i}`, t));
      const got = (await atServer) as TensorFrame[];
      for (const [i, t] of cases.entries()) {
        assert.equal(got[i].requestId, i + 1);
        assert.equal(got[i].name, `t${i}`);
        assert.equal(got[i].dtype, t.type);
        assert.deepEqual(got[i].shape, [...t.dims]);
        assert.deepEqual(frameTensor(got[i]).data, t.data);
      }
      // And back the other way.
      const atClient = collect(p.client, 1);
      await p.server.send(tensorFrame(99, "back", cases[0]));
      const [b] = (await atClient) as TensorFrame[];
      assert.deepEqual(frameTensor(b).data, cases[0].data);
      await p.close();
    });

    test("control frames carry JSON and a binary payload", async () => {
      const p = await pair(make());
      const got = collect(p.server, 1);
      const payload = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
      await p.client.send({
        type: "control",
        requestId: 3,
        msg: { t: "load", stage: 2, names: ["a"] },
        payload,
      });
      const [f] = (await got) as ControlFrame[];
      assert.deepEqual(f.msg, { t: "load", stage: 2, names: ["a"] });
      assert.deepEqual([...(f.payload ?? [])], [...payload]);
      await p.close();
    });

    test("keeps order with many 1 MiB frames in flight and counts bytes", async () => {
      const p = await pair(make());
      const n = 24;
      const got = collect(p.server, n);
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const data = new Uint8Array(1 << 20).fill(i);
        sends.push(
          p.client.send({ type: "tensor", requestId: i, name: "x", dtype: "uint8", shape: [1 << 20], data }),
        );
      }
      await Promise.all(sends);
      const frames = (await got) as TensorFrame[];
      assert.deepEqual(
        frames.map((f) => f.requestId),
        Array.from({ length: n }, (_, i) => i),
      );
      for (const f of frames) assert.ok(f.data.every((b) => b === f.requestId));
      assert.equal(p.client.bytesSent, p.server.bytesReceived);
      assert.ok(p.client.bytesSent > n * (1 << 20));
      await p.close();
    });

    test("frames that arrive before a handler is set are queued, not lost", async () => {
      let accept!: (c: Connection) => void;
      const accepted = new Promise<Connection>((r) => {
        accept = r;
      });
      const l = await make().listen("127.0.0.1", 0, accept);
      const c = await make().connect(`127.0.0.1:${l.port}`);
      for (let i = 0; i < 3; i++) await c.send({ type: "control", requestId: i, msg: { t: "m" } });
      const s = await accepted;
      await new Promise((r) => setTimeout(r, 50));
      const got = await collect(s, 3);
      assert.deepEqual(
        got.map((f) => f.requestId),
        [0, 1, 2],
      );
      c.close();
      await l.close();
    });

    test("the sender refuses a frame over its limit and the connection stays usable", async () => {
      const p = await pair(make({ maxFrameBytes: 1 << 16 }));
      const big = {
        type: "tensor" as const,
        requestId: 1,
        name: "big",
        dtype: "uint8" as const,
        shape: [1 << 17],
        data: new Uint8Array(1 << 17),
      };
      await assert.rejects(p.client.send(big), /tensor 'big'\) exceeds the limit of 65536 bytes; refused/);
      const got = collect(p.server, 1);
      await p.client.send({ type: "control", requestId: 2, msg: { t: "still-open" } });
      assert.equal(((await got)[0] as ControlFrame).msg.t, "still-open");
      await p.close();
    });

    test("the receiver refuses an incoming frame over its limit and closes", async () => {
      const p = await pair(make({ maxFrameBytes: 1 << 16 }), make({ maxFrameBytes: 1 << 24 }));
      const serverClosed = closeReason(p.server);
      const clientClosed = closeReason(p.client);
      let delivered = 0;
      p.server.onFrame(() => delivered++);
      await p.client
        .send({
          type: "tensor",
          requestId: 1,
          name: "big",
          dtype: "uint8",
          shape: [1 << 17],
          data: new Uint8Array(1 << 17),
        })
        .catch(() => {});
      const err = await serverClosed;
      assert.match(String(err?.message), /exceeds the limit of 65536 bytes; refused/);
      const cerr = await clientClosed;
      assert.match(
        String(cerr?.message),
        /peer refused a frame (of 131\d+ bytes exceeds the limit of 65536 bytes|over its size limit)/,
      );
      assert.equal(delivered, 0);
      await p.close();
    });

    test("connecting to a closed port fails with 'unreachable (ECONNREFUSED)'", async () => {
      const l = await make().listen("127.0.0.1", 0, () => {});
      const port = l.port;
      await l.close();
      await assert.rejects(make().connect(`127.0.0.1:${port}`), (err: Error) => {
        assert.equal(err.message, `127.0.0.1:${port}: unreachable (ECONNREFUSED)`);
        return true;
      });
    });

    test("a peer closing is reported with a reason; sending afterwards rejects", async () => {
      const p = await pair(make());
      const closed = closeReason(p.client);
      p.server.close();
      const err = await closed;
      assert.match(String(err?.message), /closed by peer/);
      assert.equal(p.client.closed, true);
      await assert.rejects(
        p.client.send({ type: "control", requestId: 0, msg: { t: "x" } }),
        /connection closed/,
      );
      await p.close();
    });

    test("delayMs delays each frame by at least that long and keeps order", async () => {
      const p = await pair(make());
      p.client.delayMs = 30;
      const got = collect(p.server, 5);
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) await p.client.send({ type: "control", requestId: i, msg: { t: "d" } });
      const frames = await got;
      assert.ok(performance.now() - t0 >= 29);
      assert.deepEqual(
        frames.map((f) => f.requestId),
        [0, 1, 2, 3, 4],
      );
      await p.close();
    });
  });
}
