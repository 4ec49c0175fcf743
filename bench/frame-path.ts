/**
 * Frame-path benchmark: what a request path in the tensor frame header costs on the hot path. Encodes and
 * decodes tensor frames (every hop does both) without a path (what an unreplicated pipeline sends) and with a
 * 3-stage path (a replicated one), alternating in rounds, for a small and an EfficientNet-B0-input-sized
 * tensor. With `--base DIR` the same is timed against another build's `dist/src/runtime/frame.js` (e.g. the
 * commit before paths), side by side in this run. Prints JSON: ns per encode+decode and the ratios.
 *
 * Usage: node dist/bench/frame-path.js [--iterations N] [--rounds R] [--base DIR]
 */
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import * as current from "../src/runtime/frame.js";

const { values } = parseArgs({
  options: {
    iterations: { type: "string", default: "200000" },
    rounds: { type: "string", default: "5" },
    base: { type: "string" },
  },
});
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);

type FrameModule = Pick<typeof current, "encodeFrame" | "decodeFrame">;
const base: FrameModule | undefined = values.base
  ? ((await import(
      pathToFileURL(join(resolve(values.base), "dist/src/runtime/frame.js")).href
    )) as FrameModule)
  : undefined;

/** Encodes and decodes `frame` `n` times the way a hop does (header parts joined once); ns per hop. */
function time(m: FrameModule, frame: current.TensorFrame, n: number): number {
  // The receiver sees one buffer, header and data back to back, received into a pooled buffer: the header
  // is written into one buffer reused every time, so only the header work is timed, not a data copy.
  const headerBytes = m.encodeFrame(frame)[0].byteLength;
  const buf = new Uint8Array(headerBytes + frame.data.byteLength);
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < n; i++) {
    const parts = m.encodeFrame({ ...frame, requestId: i });
    buf.set(parts[0], 0);
    const f = m.decodeFrame(buf);
    sink += f.requestId;
  }
  if (sink < 0) console.log(sink);
  return Number(process.hrtime.bigint() - t0) / n;
}

const sizes = [
  { name: "4 KiB", shape: [1, 1024] },
  { name: "588 KiB", shape: [1, 3, 224, 224] },
];
const results = sizes.map(({ name, shape }) => {
  const bytes = shape.reduce((a, b) => a * b, 1) * 4;
  const plain: current.TensorFrame = {
    type: "tensor",
    requestId: 1,
    name: "features.4.1.add",
    dtype: "float32",
    shape,
    data: new Uint8Array(bytes),
  };
  const pathed: current.TensorFrame = { ...plain, path: Uint8Array.of(0, 1, 0) };
  const n = iterations;
  const rows: Record<string, number[]> = { noPath: [], path: [], ...(base ? { base: [] } : {}) };
  time(current, plain, n); // warm up
  const runs: Array<[string, () => number]> = [
    ["noPath", () => time(current, plain, n)],
    ["path", () => time(current, pathed, n)],
    ...(base ? [["base", () => time(base, plain, n)] as [string, () => number]] : []),
  ];
  // The order rotates every round, so none always runs first or last.
  for (let r = 0; r < rounds; r++)
    for (let k = 0; k < runs.length; k++) {
      const [key, run] = runs[(k + r) % runs.length];
      rows[key].push(run());
    }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    tensor: name,
    iterations: n,
    nsPerHop: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, r1(med(v))])),
    pathOverNoPath: Math.round((med(rows.path) / med(rows.noPath)) * 1000) / 1000,
    ...(base ? { noPathOverBase: Math.round((med(rows.noPath) / med(rows.base)) * 1000) / 1000 } : {}),
  };
});
console.log(JSON.stringify({ bench: "frame-path", rounds, results }, null, 2));
