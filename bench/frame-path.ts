import { existsSync } from "node:fs";
/**
 * Frame-path benchmark: what a request path in the tensor frame header costs on the hot path. Encodes and
 * decodes tensor frames (every hop does both) without a path (what an unreplicated pipeline sends) and with a
 * 3-stage path (a replicated one), alternating in rounds, for a small and an EfficientNet-B0-input-sized
 * tensor. With `--base DIR` the same is timed against another build's `dist/src/runtime/frame.js` (e.g. the
 * commit before paths), side by side in this run. Each timing runs in a fresh process, so one variant's frame
 * shapes do not make the encoder's property reads polymorphic for the next; the order rotates every round.
 * Prints JSON: ns per encode+decode (median over rounds) and the ratios.
 *
 * Usage: node dist/bench/frame-path.js [--iterations N] [--rounds R] [--base DIR]
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import * as current from "../src/runtime/transport/frame.js";

const { values } = parseArgs({
  options: {
    iterations: { type: "string", default: "200000" },
    rounds: { type: "string", default: "5" },
    base: { type: "string" },
    variant: { type: "string" },
    size: { type: "string" },
  },
});
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);

type FrameModule = Pick<typeof current, "encodeFrame" | "decodeFrame">;
const base: FrameModule | undefined = values.base
  ? ((await import(
      // A checkout from before the runtime got its subfolders keeps frames at dist/src/runtime/frame.js.
      pathToFileURL(
        ["dist/src/runtime/transport/frame.js", "dist/src/runtime/frame.js"]
          .map((f) => join(resolve(values.base as string), f))
          .find((f) => existsSync(f)) ?? join(resolve(values.base), "dist/src/runtime/transport/frame.js"),
      ).href
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

/** One timing in this process: `variant` on `sizes[size]`, ns per hop, printed. */
function child(variant: string, size: number): void {
  const { shape } = sizes[size];
  const bytes = shape.reduce((a, b) => a * b, 1) * 4;
  const frame: current.TensorFrame = {
    type: "tensor",
    requestId: 1,
    name: "features.4.1.add",
    dtype: "float32",
    shape,
    data: new Uint8Array(bytes),
    ...(variant === "path" ? { path: Uint8Array.of(0, 1, 0) } : {}),
  };
  const m = variant === "base" ? base : current;
  if (!m) throw new Error("--variant base needs --base DIR");
  time(m, frame, Math.max(1000, iterations / 10)); // warm up
  process.stdout.write(`${time(m, frame, iterations)}\n`);
}

if (values.variant !== undefined) {
  child(values.variant, Number(values.size ?? 0));
} else {
  const self = fileURLToPath(import.meta.url);
  const node = self.endsWith(".ts") ? ["--import", "tsx", self] : [self];
  const variants = ["noPath", "path", ...(base ? ["base"] : [])];
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const results = sizes.map(({ name }, size) => {
    const rows: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));
    for (let r = 0; r < rounds; r++)
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(k + r) % variants.length];
        const args = [...node, "--variant", v, "--size", String(size), "--iterations", String(iterations)];
        if (values.base) args.push("--base", values.base);
        const out = spawnSync(process.execPath, args, { encoding: "utf8" });
        if (out.status !== 0) throw new Error(`frame-path child failed: ${out.stderr}`);
        rows[v].push(Number(out.stdout.trim()));
      }
    return {
      tensor: name,
      iterations,
      nsPerHop: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, r1(med(v))])),
      pathOverNoPath: Math.round((med(rows.path) / med(rows.noPath)) * 1000) / 1000,
      ...(base ? { noPathOverBase: Math.round((med(rows.noPath) / med(rows.base)) * 1000) / 1000 } : {}),
    };
  });
  console.log(JSON.stringify({ bench: "frame-path", rounds, results }, null, 2));
}
