import { boundaryTransfer, suffixMinEnd } from "./bounds.js";
import type { ResolvedConstraints } from "./constraints.js";
import { type Candidate, evaluate } from "./evaluate.js";
import type { PlanProblem } from "./problem.js";

/**
 * A good throughput plan fast, not proven: for a target period T (s), stages are laid greedily from the
 * start, each on the unused allowed device that runs furthest with its stage time, incoming transfer and
 * (on its fastest link) outgoing transfer within T (ties: the device slower on the whole model, keeping
 * faster ones for later); a bisection on T
 * between `floor` (a proven lower bound on the bottleneck) and the best single device keeps the best plan
 * that `evaluate` finds feasible. O(probes x stages x D x stage length); it seeds the exact throughput
 * search with an incumbent near the optimum, which a beam search found far more slowly (ViT-Tiny on 8
 * distinct devices: 4.4 s for a plan 17% above the optimum).
 */
export function greedyBottleneck(
  p: PlanProblem,
  rc: ResolvedConstraints,
  floor: number,
  probes = 40,
): { candidate: Candidate; value: number } | undefined {
  const { n } = p;
  const D = p.devices.length;
  const sufMin = suffixMinEnd(p);
  const whole = p.devices.map((_, d) => p.prefix[d][n]);
  // Per device, the least latency and seconds per byte over its links: a stage may end at j only when its
  // output could leave within T.
  const fastest = p.devices.map((_, d) => {
    let latency = Number.POSITIVE_INFINITY;
    let perByte = Number.POSITIVE_INFINITY;
    for (const l of p.links) {
      if (!l.devices.includes(d)) continue;
      latency = Math.min(latency, l.latency);
      perByte = Math.min(perByte, l.secondsPerByte);
    }
    return { latency, perByte };
  });
  let best: { candidate: Candidate; value: number } | undefined;
  const consider = (c: Candidate) => {
    const ev = evaluate(p, c, rc);
    if (ev.feasible && (!best || ev.bottleneck < best.value)) best = { candidate: c, value: ev.bottleneck };
  };
  for (let d = 0; d < D; d++) if (rc.allowed[d]) consider({ stages: [{ device: d, start: 0, end: n }] });

  const lay = (T: number): Candidate | undefined => {
    const used = new Uint8Array(D);
    const stages: Candidate["stages"] = [];
    let b = 0;
    let prev = -1;
    while (b < n) {
      let pick = -1;
      let reach = b;
      for (let e = 0; e < D; e++) {
        if (used[e] || !rc.allowed[e]) continue;
        if (rc.rank && prev >= 0 && rc.rank[e] <= rc.rank[prev]) continue;
        const tr = boundaryTransfer(p, prev < 0 ? p.inputDevice : prev, e, b);
        if (!tr || tr.time > T) continue;
        const pre = p.prefix[e];
        const base0 = p.startCost[e][b] - pre[b];
        let far = b;
        for (let j = b + 1; j <= p.memEnd[e][b]; j++) {
          const base = pre[j] + base0;
          if (base + sufMin[e][j] > T) break;
          if (base + p.endCost[e][j] > T) continue;
          if (j === n) {
            const out = boundaryTransfer(p, e, p.outputDevice, n);
            if (!out || out.time > T) continue;
          } else if (p.cutBytes[j] > 0 && fastest[e].latency + p.cutBytes[j] * fastest[e].perByte > T)
            continue;
          far = j;
        }
        if (far > reach || (far === reach && far > b && whole[e] > whole[pick])) {
          reach = far;
          pick = e;
        }
      }
      if (pick < 0) return undefined;
      stages.push({ device: pick, start: b, end: reach });
      used[pick] = 1;
      prev = pick;
      b = reach;
    }
    return { stages };
  };

  let lo = Math.max(0, floor);
  let hi = best?.value ?? Number.POSITIVE_INFINITY;
  if (!Number.isFinite(hi)) {
    // No single device fits: find any period the greedy reaches, doubling from the floor.
    hi = lo > 0 ? lo : 1e-6;
    for (let k = 0; k < 60 && !lay(hi); k++) hi *= 2;
  }
  for (let k = 0; k < probes && hi > lo * (1 + 1e-6); k++) {
    const T = (lo + hi) / 2;
    const c = lay(T);
    if (c) {
      consider(c);
      hi = T;
    } else lo = T;
  }
  const last = lay(hi);
  if (last) consider(last);
  return best;
}
