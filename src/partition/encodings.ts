import { ArgumentError } from "../errors.js";
import {
  ENCODINGS,
  type EncodingName,
  baseEncoding,
  isPacked,
  isPerChannel,
  quantLevels,
  quantParams,
  type TensorEncoding,
  wireBytes,
} from "../onnx/encoding.js";
import type { Fidelity, FidelityBudget, TensorRange } from "./calibrate.js";
import { meetsBudget } from "./calibrate.js";
import { boundaryBytes, type PlanProblem } from "./problem.js";

/**
 * CPU time of encoding and decoding, s per element on one core of the machine that measured them, by encoding
 * (measured with onnxruntime by `measureCodecTimes`, or given), and that core's float32 rate in MAC/s measured
 * the same way cluster files state device throughput (`hostMacsPerSecond`: resnet18 on one onnxruntime thread).
 * A device's codec time is the measured one scaled by hostMacsPerSecond over the device's MAC rate; times given
 * without `hostMacsPerSecond` are taken as every device's own. float32 costs nothing; a zero-packed
 * encoding's time is its base encoding's and the packing's together (packing measured in the worker's JS).
 */
export type CodecTimes = Partial<Record<EncodingName, { encode: number; decode: number }>> & {
  hostMacsPerSecond?: number;
};

/** Seconds one device spends encoding (or decoding) `elements` with `e`. */
export function codecSeconds(
  times: CodecTimes,
  e: EncodingName,
  side: "encode" | "decode",
  elements: number,
  deviceMacsPerSecond: number,
): number {
  const t = times[e];
  if (!t || e === "float32") return 0;
  const scale = times.hostMacsPerSecond === undefined ? 1 : times.hostMacsPerSecond / deviceMacsPerSecond;
  return elements * t[side] * scale;
}

/**
 * The problem with some tensors sent encoded: their bytes become elements x wire bytes (boundary bytes follow),
 * a stage ending at a boundary pays the encoding of what crosses it and a stage starting there the decoding
 * (on its device's speed). Graph inputs sent from the input device are encoded there and decoded by the first
 * stage; both are in the first stage's time when it is on another device (a stage on the input device reads
 * them as they are), for the request's latency, and the input device's part, the encode and its transfer CPU
 * for receiving the inputs and sending them encoded, is `inputFeed`, which prices the first stage's period
 * (`fedPeriod`, `priceGroup`). Graph outputs stay float32. A zero-packed tensor's bytes follow its share of non-zero
 * elements (`nonZero`; none known: priced dense); a 4-bit one's by rows of its last axis (`lastAxis`, see
 * `wireBytes`). `p` is not changed.
 */
export function encodedProblem(
  p: PlanProblem,
  chosen: ReadonlyMap<string, EncodingName>,
  times: CodecTimes,
  nonZero: ReadonlyMap<string, number> = new Map(),
  lastAxis: (tensor: string) => number | undefined = () => undefined,
): PlanProblem {
  if (chosen.size === 0) return p;
  const tensors = p.tensors.map((t) => {
    const e = chosen.get(t.name);
    return e && e !== "float32" && t.lastUse < p.n
      ? { ...t, bytes: wireBytes(e, t.bytes / 4, nonZero.get(t.name), lastAxis(t.name)) }
      : t;
  });
  const D = p.devices.length;
  const startCost = p.startCost.map((a) => Float64Array.from(a));
  const endCost = p.endCost.map((a) => Float64Array.from(a));
  const input = p.devices[p.inputDevice];
  let inputEncode = 0;
  let inputIo = 0;
  for (const [i, t] of p.tensors.entries()) {
    const e = chosen.get(t.name);
    if (!e || e === "float32" || t.lastUse >= p.n) continue;
    const elements = t.bytes / 4;
    const enc0 = t.def < 0 ? codecSeconds(times, e, "encode", elements, input.macsPerSecond) : 0;
    if (t.def < 0) {
      inputEncode += enc0;
      // Received as it is and sent on encoded by the input device's worker.
      inputIo += (input.transferCpu ?? 0) * (t.bytes + tensors[i].bytes);
    }
    for (let d = 0; d < D; d++) {
      const rate = p.devices[d].macsPerSecond;
      const dec = codecSeconds(times, e, "decode", elements, rate);
      if (t.def < 0) {
        if (d !== p.inputDevice) startCost[d][0] += dec + enc0;
        for (let b = 1; b <= t.lastUse; b++) startCost[d][b] += dec;
        continue;
      }
      const enc = codecSeconds(times, e, "encode", elements, rate);
      for (let b = t.def + 1; b <= t.lastUse; b++) {
        endCost[d][b] += enc;
        startCost[d][b] += dec;
      }
    }
  }
  const fed =
    inputEncode + inputIo > 0 ? { inputFeed: { encode: inputEncode, feed: inputEncode + inputIo } } : {};
  return { ...p, tensors, cutBytes: boundaryBytes(p.n, tensors), startCost, endCost, ...fed };
}

/** Fidelity measured per tensor and encoding (each alone), as calibration fills it in. */
export type FidelityTable = ReadonlyMap<string, ReadonlyMap<EncodingName, Fidelity>>;

/** A tensor crossing a cut now: its elements and the link it takes (s/byte, from a bandwidth estimate). */
export interface CutTensorLink {
  tensor: string;
  elements: number;
  secondsPerByte: number;
  /** MAC rates of the sending and receiving devices (codec time scales with them). */
  fromMacsPerSecond: number;
  toMacsPerSecond: number;
  /** Share of its elements measured not zero (zero-packed encodings are tried only when known). */
  nonZero?: number;
}

/**
 * The encoding of each cut tensor that sends it fastest (transfer + encode + decode) at the given bandwidths
 * among those whose measured fidelity meets the budget (float32 always does). A pure function of its
 * arguments, so a control loop with online bandwidth estimates can call it again whenever an estimate moves
 * and swap the stage models' encodings as it swaps cuts; the combination it returns should be checked again
 * (`Calibrator.fidelity`) before it is trusted, as each entry of the table is a tensor measured alone.
 */
export function chooseEncodings(
  links: readonly CutTensorLink[],
  table: FidelityTable,
  budget: FidelityBudget,
  times: CodecTimes,
): Map<string, EncodingName> {
  const out = new Map<string, EncodingName>();
  for (const l of links) {
    let best: EncodingName = "float32";
    let bestTime = l.elements * 4 * l.secondsPerByte;
    for (const e of ENCODINGS) {
      if (e === "float32" || (isPacked(e) && l.nonZero === undefined)) continue;
      // Packing is lossless: a packed encoding keeps its base's fidelity.
      const f =
        table.get(l.tensor)?.get(e) ?? (isPacked(e) ? table.get(l.tensor)?.get(baseEncoding(e)) : undefined);
      if (!f || !meetsBudget(f, budget)) continue;
      const time =
        wireBytes(e, l.elements, l.nonZero) * l.secondsPerByte +
        codecSeconds(times, e, "encode", l.elements, l.fromMacsPerSecond) +
        codecSeconds(times, e, "decode", l.elements, l.toMacsPerSecond);
      if (time < bestTime) {
        best = e;
        bestTime = time;
      }
    }
    out.set(l.tensor, best);
  }
  return out;
}

/** The recorded encoding of a tensor with its calibrated parameters (scale and zero point for the int8 and int4 encodings). */
export function tensorEncoding(tensor: string, e: EncodingName, range?: TensorRange): TensorEncoding {
  const base = baseEncoding(e);
  if (isPacked(e)) {
    const nonZero = range?.nonZero;
    if (nonZero === undefined)
      throw new ArgumentError(`encoding of '${tensor}': ${e} needs the tensor's calibrated share of zeros`, {
        tensor,
      });
    const dense = tensorEncoding(tensor, base, range);
    // Quantized zeros are zero bytes only with a zero point of 0 (post-ReLU); else priced as not sparse.
    const zeroKept = (dense.zeroPoint ?? [0]).every((z) => z === 0);
    return { ...dense, encoding: e, nonZero: zeroKept ? nonZero : 1 };
  }
  if (e === "float32" || e === "float16") return { tensor, encoding: e };
  if (!range || !Number.isFinite(range.min))
    throw new ArgumentError(`encoding of '${tensor}': ${e} needs the tensor's calibrated range`, { tensor });
  const levels = quantLevels(e);
  if (!isPerChannel(e)) {
    const q = quantParams(range.min, range.max, levels);
    return { tensor, encoding: e, scale: [q.scale], zeroPoint: [q.zeroPoint] };
  }
  if (!range.channelMin || !range.channelMax)
    throw new ArgumentError(`encoding of '${tensor}': ${e} needs a tensor of rank 2 or more`, {
      tensor,
    });
  const qs = range.channelMin.map((lo, c) => quantParams(lo, range.channelMax![c], levels));
  return { tensor, encoding: e, scale: qs.map((q) => q.scale), zeroPoint: qs.map((q) => q.zeroPoint) };
}

/**
 * Parses `--fidelity top1=0.99,top5=0.999` and `--max-rel-error 1e-2` into a budget; undefined when neither
 * is given. One-line errors name the flag and the key.
 */
export function parseFidelityBudget(fidelity?: string, maxRelError?: string): FidelityBudget | undefined {
  if (fidelity === undefined && maxRelError === undefined) return undefined;
  const budget: FidelityBudget = {};
  const num = (flag: string, s: string, lo: number, hi: number): number => {
    const v = Number(s);
    if (s.trim() === "" || !Number.isFinite(v) || v < lo || v > hi)
      throw new ArgumentError(`${flag}: expected a number in [${lo}, ${hi}], got '${s}'`, {
        field: flag.replace(/^--/, ""),
      });
    return v;
  };
  for (const item of (fidelity ?? "").split(",").filter((s) => s.trim() !== "")) {
    const m = /^\s*([a-z0-9-]+)\s*=\s*(.*)$/i.exec(item);
    const key = m?.[1].toLowerCase();
    if (!m || !key)
      throw new ArgumentError(`--fidelity: expected key=value, got '${item}'`, { field: "fidelity" });
    if (key === "top1" || key === "top5") budget[key] = num(`--fidelity ${key}`, m[2], 0, 1);
    else if (key === "max-rel-error")
      budget.maxRelError = num("--fidelity max-rel-error", m[2], 0, Number.MAX_VALUE);
    else if (key === "mean-rel-error")
      budget.meanRelError = num("--fidelity mean-rel-error", m[2], 0, Number.MAX_VALUE);
    else
      throw new ArgumentError(
        `--fidelity: unknown key '${m[1]}' (known: top1, top5, max-rel-error, mean-rel-error)`,
        { field: "fidelity" },
      );
  }
  if (maxRelError !== undefined)
    budget.maxRelError = num("--max-rel-error", maxRelError, 0, Number.MAX_VALUE);
  return budget;
}

/** The budget as flags would write it (`top1=0.99, max-rel-error=0.01`). */
export function formatBudget(b: FidelityBudget): string {
  const parts: string[] = [];
  if (b.top1 !== undefined) parts.push(`top1=${b.top1}`);
  if (b.top5 !== undefined) parts.push(`top5=${b.top5}`);
  if (b.maxRelError !== undefined) parts.push(`max-rel-error=${b.maxRelError}`);
  if (b.meanRelError !== undefined) parts.push(`mean-rel-error=${b.meanRelError}`);
  return parts.join(", ");
}
