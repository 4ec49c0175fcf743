import {
  allowedDevices,
  type BaselineResult,
  notApplicable,
  pricedBaseline,
  proportionalCuts,
} from "./baseline.js";
import type { ResolvedConstraints } from "./constraints.js";
import { candidateFromCuts } from "./evaluate.js";
import type { PlanProblem } from "./problem.js";

/** Devices in the order a fixed-rule split uses, and each one's share. */
function fixedSplit(
  p: PlanProblem,
  rc: ResolvedConstraints,
  name: string,
  description: string,
  devices: number[],
  weight: ArrayLike<number>,
  shares: number[],
): BaselineResult {
  if (devices.length === 0) return notApplicable(name, description, "no device may run stages");
  const k = Math.min(devices.length, p.n);
  const cuts = proportionalCuts(weight, shares.slice(0, k));
  return pricedBaseline(p, rc, name, description, {
    candidate: candidateFromCuts(p.n, cuts, devices.slice(0, k)),
  });
}

/** Input device first (when allowed), then the others in cluster order. */
function inputFirst(p: PlanProblem, rc: ResolvedConstraints): number[] {
  const ds = allowedDevices(p, rc);
  return [...ds.filter((d) => d === p.inputDevice), ...ds.filter((d) => d !== p.inputDevice)];
}

/** Equal numbers of nodes on every allowed device (input device first, then cluster order). */
export function equalLayersBaseline(p: PlanProblem, rc: ResolvedConstraints): BaselineResult {
  const devices = inputFirst(p, rc);
  return fixedSplit(
    p,
    rc,
    "equal-layers",
    "equal node counts on every device",
    devices,
    new Float64Array(p.n).fill(1),
    devices.map(() => 1),
  );
}

/**
 * exo's ring partitioning: devices ordered by memory (largest first), each taking a share of the nodes
 * proportional to its memory.
 */
export function memoryProportionalBaseline(p: PlanProblem, rc: ResolvedConstraints): BaselineResult {
  const devices = allowedDevices(p, rc).sort((a, b) => p.devices[b].memory - p.devices[a].memory || a - b);
  return fixedSplit(
    p,
    rc,
    "memory-proportional",
    "nodes in proportion to device memory, largest first (exo ring)",
    devices,
    new Float64Array(p.n).fill(1),
    devices.map((d) => p.devices[d].memory),
  );
}

/** MACs in proportion to each device's MAC/s, input device first, then cluster order. */
export function computeProportionalBaseline(p: PlanProblem, rc: ResolvedConstraints): BaselineResult {
  const devices = inputFirst(p, rc);
  return fixedSplit(
    p,
    rc,
    "compute-proportional",
    "MACs in proportion to device MAC/s",
    devices,
    p.macs,
    devices.map((d) => p.devices[d].macsPerSecond),
  );
}
