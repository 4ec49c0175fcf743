import type { ResolvedConstraints } from "./constraints.js";
import { linkSymmetric, type PlanProblem } from "./problem.js";

/**
 * Device dominance: bit z of `better[y]` is set when device z can replace y in any plan at no extra cost:
 * neither holds the input or output, swapping them maps the links onto themselves, and z is no slower at any
 * position, no costlier at any stage start or end, fits at least as much, and (when energy counts) draws no
 * more power. Identical devices stand in for each other.
 */
export function deviceDominance(p: PlanProblem, rc: ResolvedConstraints, energy: boolean): Int32Array {
  const D = p.devices.length;
  const better = new Int32Array(D);
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
      if (atLeastAsGood(z, y) && linkSymmetric(p, y, z)) better[y] |= 1 << z;
    }
  }
  return better;
}
