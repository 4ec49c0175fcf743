import type { AnalyzedModel } from "../ir/analyze.js";
import { opClass } from "./cost-analytic.js";
import type { NodeTimes } from "./node-times.js";
import { median } from "./stats.js";

/**
 * How much slower a device is than a reference device, learned from profiles of one calibration model on
 * both: a time ratio (target / reference) per operator class, an overall ratio for classes not seen, and one
 * for the stage overhead. Ratios carry over to other models.
 */
export interface DeviceRatio {
  /** Name of the reference device (whose profile of the model to price is scaled). */
  reference: string;
  byClass: Record<string, number>;
  overall: number;
  overhead: number;
}

/**
 * Learns a {@link DeviceRatio} from node times of the same model on a reference and a target device: per
 * operator class, the ratio of summed kernel times (so heavy kernels dominate, as they do in latency); the
 * overall ratio is that of the whole-model kernel sums; the overhead ratio that of the fixed stage cost.
 */
export function calibrateRatio(
  model: AnalyzedModel,
  reference: NodeTimes,
  target: NodeTimes,
  referenceName: string,
): DeviceRatio {
  const sums = new Map<string, [number, number]>();
  let refTotal = 0;
  let tgtTotal = 0;
  model.graph.nodes.forEach((node, i) => {
    if (reference.anchorOf[i] !== i || target.anchorOf[i] !== i) return;
    const s = sums.get(opClass(node)) ?? [0, 0];
    s[0] += reference.latency[i];
    s[1] += target.latency[i];
    sums.set(opClass(node), s);
    refTotal += reference.latency[i];
    tgtTotal += target.latency[i];
  });
  const overall = refTotal > 0 ? tgtTotal / refTotal : 1;
  const byClass: Record<string, number> = {};
  for (const [cls, [r, t]] of sums) if (r > 0 && t > 0) byClass[cls] = t / r;
  const ro = reference.overhead;
  const to = target.overhead;
  const overheadRatios = [to.fixed / ro.fixed, to.perByteOut / ro.perByteOut].filter(
    (v) => Number.isFinite(v) && v > 0,
  );
  return {
    reference: referenceName,
    byClass,
    overall,
    overhead: overheadRatios.length > 0 ? median(overheadRatios) : overall,
  };
}

/** Node times on a target device from a reference device's times and a {@link DeviceRatio} (per operator class). */
export function scaleTimesByClass(model: AnalyzedModel, times: NodeTimes, ratio: DeviceRatio): NodeTimes {
  const factor = (i: number) => ratio.byClass[opClass(model.graph.nodes[i])] ?? ratio.overall;
  const o = times.overhead;
  const f = ratio.overhead;
  return {
    latency: times.latency.map((v, i) => v * factor(i)),
    standalone: times.standalone.map((v, i) => v * factor(i)),
    anchorOf: times.anchorOf,
    blocked: times.blocked,
    overhead: {
      fixed: o.fixed * f,
      perByteIn: o.perByteIn * f,
      perByteOut: o.perByteOut * f,
      perByteLayout: o.perByteLayout * ratio.overall,
    },
  };
}
