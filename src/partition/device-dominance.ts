import type { ResolvedConstraints } from "./constraints.js";
import { setWords } from "./device-set.js";
import { linkSymmetric, type PlanProblem } from "./problem.js";

/**
 * Device dominance: `better` holds one device set of `setWords(D)` words per device (see device-set.ts); device
 * z is in y's set (at offset y * W) when z can replace y in any plan at no extra cost:
 * neither holds the input or output, swapping them maps the links onto themselves, and z is no slower at any
 * position, no costlier at any stage start or end, fits at least as much, and (when energy counts) draws no
 * more power. Identical devices stand in for each other. O(D^2 n); memoised per problem, allowed devices and
 * `energy` (a throughput search runs several label searches on one problem). Do not modify the result.
 */
export function deviceDominance(p: PlanProblem, rc: ResolvedConstraints, energy: boolean): Int32Array {
  const perProblem = memo.get(p) ?? new Map<string, Int32Array>();
  memo.set(p, perProblem);
  const key = `${energy}:${rc.allowed.join("")}`;
  const hit = perProblem.get(key);
  if (hit) return hit;
  const better = computeDominance(p, rc, energy);
  perProblem.set(key, better);
  return better;
}

const memo = new WeakMap<PlanProblem, Map<string, Int32Array>>();

function computeDominance(p: PlanProblem, rc: ResolvedConstraints, energy: boolean): Int32Array {
  const D = p.devices.length;
  const W = setWords(D);
  const better = new Int32Array(D * W);
  const { n } = p;
  const atLeastAsGood = (z: number, y: number): boolean => {
    const pz = p.prefix[z];
    const py = p.prefix[y];
    // Figures derived by differences carry rounding noise: compare to 1e-12 of the model's time on y.
    const tol = 1e-12 * py[n];
    for (let q = 0; q < n; q++) if (pz[q + 1] - pz[q] > py[q + 1] - py[q] + tol) return false;
    for (let q = 0; q <= n; q++) {
      if (p.startCost[z][q] > p.startCost[y][q] + tol || p.endCost[z][q] > p.endCost[y][q] + tol)
        return false;
    }
    for (let q = 0; q < n; q++) if (p.memEnd[z][q] < p.memEnd[y][q]) return false;
    return !energy || p.devices[z].power <= p.devices[y].power;
  };
  const special = (d: number) => d === p.inputDevice || d === p.outputDevice || !rc.allowed[d];
  for (let y = 0; y < D; y++) {
    if (special(y)) continue;
    for (let z = 0; z < D; z++) {
      if (z === y || special(z)) continue;
      if (atLeastAsGood(z, y) && linkSymmetric(p, y, z)) better[y * W + (z >>> 5)] |= 1 << (z & 31);
    }
  }
  return better;
}
