import {
  CONSTRAINT_FLAG,
  type Objective,
  type PlanConstraints,
  type ResolvedConstraints,
  resolveConstraints,
} from "./constraints.js";
import { evaluate } from "./evaluate.js";
import { fmtBytes, fmtJoules, fmtRate, fmtSeconds } from "./fmt.js";
import { planExact } from "./planner-exact.js";
import type { PlanProblem } from "./problem.js";

/** Why nothing fits: the constraints that bind, and one actionable line for each finding. */
export interface Infeasibility {
  binding: Array<"memory" | "links" | "latency" | "throughput" | "energy" | "link-bytes" | "combination">;
  lines: string[];
}

type Limit = "maxLatency" | "minThroughput" | "maxEnergy" | "maxLinkBytes";

const LIMITS: readonly Limit[] = ["maxLatency", "minThroughput", "maxEnergy", "maxLinkBytes"];

function best(p: PlanProblem, objective: Objective, rc: ResolvedConstraints) {
  const r = planExact(p, { objective, constraints: rc, maxLabels: 1e6, tieBreak: false });
  return r.candidate ? evaluate(p, r.candidate, rc) : undefined;
}

/**
 * Explains why no plan meets the constraints: memory and links first (what the model needs against the
 * largest device, how many devices it takes), then each limit (latency, throughput, energy, link bytes)
 * against the best any plan can do within the other limits, with what would make it fit.
 */
export function explainInfeasible(p: PlanProblem, c: PlanConstraints): Infeasibility {
  const base = resolveConstraints(p, { devices: c.devices, deviceOrder: c.deviceOrder });
  const allowed = p.devices.map((_, d) => d).filter((d) => base.allowed[d]);
  if (allowed.length === 0)
    return { binding: ["combination"], lines: ["no device may run stages (check --devices)"] };
  if (!best(p, "latency", base)) return memoryOrLinks(p, base, allowed);

  const set = LIMITS.filter((k) => c[k] !== undefined);
  const out: Infeasibility = { binding: [], lines: [] };
  // Each limit against the best any plan can do: alone (memory only), else within the other limits.
  for (const k of set) {
    const others = resolveConstraints(p, { ...c, [k]: undefined });
    const limit = c[k]!;
    const objective: Objective =
      k === "maxEnergy" ? "energy" : k === "minThroughput" ? "throughput" : "latency";
    const alone = best(p, objective, base);
    const binds = (e: ReturnType<typeof best>) =>
      e !== undefined &&
      (k === "maxLatency"
        ? e.latency > limit
        : k === "minThroughput"
          ? e.throughput < limit
          : k === "maxEnergy"
            ? e.energy > limit
            : Math.max(0, ...e.links.map((l) => l.bytes)) > limit);
    let e = alone;
    let within = "";
    if (!binds(alone) && set.length > 1) {
      e = best(p, objective, others);
      within = " within the other limits";
    }
    if (!e || !binds(e)) continue;
    if (k === "maxLatency") {
      out.binding.push("latency");
      out.lines.push(
        `${CONSTRAINT_FLAG[k]} ${fmtSeconds(limit)}: the fastest plan${within} takes ${fmtSeconds(e.latency)} (${fmtSeconds(e.latency - limit)} over); allow at least ${fmtSeconds(e.latency)}, or add faster devices or links`,
      );
    } else if (k === "minThroughput") {
      out.binding.push("throughput");
      out.lines.push(
        `${CONSTRAINT_FLAG[k]} ${limit}: at most ${fmtRate(e.throughput)} is possible${within} (${(100 * (1 - e.throughput / limit)).toFixed(1)}% short; slowest pipeline stage ${fmtSeconds(e.bottleneck)}); ask for at most ${e.throughput.toPrecision(3)}, or add devices`,
      );
    } else if (k === "maxEnergy") {
      out.binding.push("energy");
      out.lines.push(
        `${CONSTRAINT_FLAG[k]} ${fmtJoules(limit)}: the most frugal plan${within} uses ${fmtJoules(e.energy)} per inference (${fmtJoules(e.energy - limit)} over); allow at least ${fmtJoules(e.energy)}`,
      );
    } else {
      const busiest = Math.max(0, ...e.links.map((l) => l.bytes));
      let narrow = Number.POSITIVE_INFINITY;
      for (let b = 1; b < p.n; b++) narrow = Math.min(narrow, p.cutBytes[b]);
      out.binding.push("link-bytes");
      out.lines.push(
        `${CONSTRAINT_FLAG[k]} ${fmtBytes(limit)}: no plan${within} keeps every link under it; the fastest sends ${fmtBytes(busiest)} on its busiest link, the narrowest cut carries ${fmtBytes(narrow)} and the input ${fmtBytes(p.cutBytes[0])}`,
      );
    }
  }
  if (out.lines.length > 0) return out;
  // Each limit can be met given the others dropped one at a time... only never all together.
  const alone = set.map((k) => {
    const e = best(p, k === "maxEnergy" ? "energy" : k === "minThroughput" ? "throughput" : "latency", base);
    if (!e) return `${CONSTRAINT_FLAG[k]}: none`;
    if (k === "maxLatency") return `fastest ${fmtSeconds(e.latency)}`;
    if (k === "minThroughput") return `best ${fmtRate(e.throughput)}`;
    if (k === "maxEnergy") return `least energy ${fmtJoules(e.energy)}`;
    return `busiest link ${fmtBytes(Math.max(0, ...e.links.map((l) => l.bytes)))}`;
  });
  return {
    binding: ["combination"],
    lines: [
      `the limits ${set.map((k) => CONSTRAINT_FLAG[k]).join(", ")} cannot hold together, though each can alone (${alone.join("; ")}): relax one of them`,
    ],
  };
}

/** Nothing fits even without limits: memory per device, or missing links between the devices that could. */
function memoryOrLinks(p: PlanProblem, rc: ResolvedConstraints, allowed: number[]): Infeasibility {
  const { n } = p;
  const largest = allowed.reduce((a, d) => (p.devices[d].memory > p.devices[a].memory ? d : a), allowed[0]);
  const big = p.devices[largest];
  // Fewest stages with memory alone (any device, repeats allowed: furthest reach is optimal).
  let stages = 0;
  for (let pos = 0; pos < n; stages++) {
    let reach = pos;
    for (const d of allowed) reach = Math.max(reach, p.memEnd[d][pos]);
    if (reach === pos) {
      const need = p.memory(largest, pos, pos + 1);
      return {
        binding: ["memory"],
        lines: [
          `node ${pos} of the partition order alone needs ${fmtBytes(need)}, more than any device has (largest: ${big.name}, ${fmtBytes(big.memory)}); add a device with at least ${fmtBytes(need)}`,
        ],
      };
    }
    pos = reach;
  }
  const whole = p.memory(largest, 0, n);
  if (stages > allowed.length) {
    return {
      binding: ["memory"],
      lines: [
        `needs ${fmtBytes(whole)} (weights + activations + runtime), the largest device ${big.name} has ${fmtBytes(big.memory)}: use at least ${stages} devices (${allowed.length} may run stages), or devices with more memory`,
      ],
    };
  }
  // Would it fit with every pair linked? Then links are what is missing.
  const fakeLink = p.links.length;
  const D = p.devices.length;
  const linked: PlanProblem = {
    ...p,
    links: [
      ...p.links,
      { name: "any", devices: p.devices.map((_, d) => d), latency: 0, secondsPerByte: 0, joulesPerByte: 0 },
    ],
    linkIndex: p.linkIndex.map((l, i) => (l >= 0 || Math.floor(i / D) === i % D ? l : fakeLink)),
  };
  const r = planExact(linked, { objective: "latency", constraints: rc, maxLabels: 1e6 });
  if (r.candidate) {
    const path = [p.inputDevice, ...r.candidate.stages.map((s) => s.device), p.outputDevice];
    const missing: string[] = [];
    for (let i = 1; i < path.length; i++) {
      const a = path[i - 1];
      const b = path[i];
      if (a !== b && p.linkIndex[a * D + b] < 0) missing.push(`${p.devices[a].name}-${p.devices[b].name}`);
    }
    return {
      binding: ["links"],
      lines: [
        `the model fits in memory only across ${r.candidate.stages.length} devices (${r.candidate.stages.map((s) => p.devices[s.device].name).join(", ")}), but no links join them in a chain from ${p.devices[p.inputDevice].name} to ${p.devices[p.outputDevice].name}: add a link ${missing.join(", ")}`,
      ],
    };
  }
  return {
    binding: ["memory"],
    lines: [
      `needs ${fmtBytes(whole)} (weights + activations + runtime), the largest device ${big.name} has ${fmtBytes(big.memory)}: the ${allowed.length} devices that may run stages cannot hold it with one stage each${rc.rank ? " in the given device order" : ""}; add devices or memory`,
    ],
  };
}
