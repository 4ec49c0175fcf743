import { BYTES, TIME } from "../cluster/units.js";
import { ArgumentError } from "../errors.js";
import type { PlanProblem } from "./problem.js";

/** What a plan optimises. */
export type Objective = "latency" | "throughput" | "energy";

/** The objectives, in the order plans list them. */
export const OBJECTIVES: readonly Objective[] = ["latency", "throughput", "energy"];

/** Limits a plan must respect (memory per device always applies). SI units. */
export interface PlanConstraints {
  /** Maximum end-to-end latency of one inference, s. */
  maxLatency?: number;
  /** Minimum pipelined throughput, inferences/s. */
  minThroughput?: number;
  /** Maximum energy per inference, J. */
  maxEnergy?: number;
  /** Maximum bytes one link carries per inference. */
  maxLinkBytes?: number;
  /** Devices that may run stages (default: all). The input and output devices hold data either way. */
  devices?: string[];
  /** Stages must use devices in this order (a subsequence of it), e.g. along a chain of links. */
  deviceOrder?: string[];
}

/** The `cleave plan` flag that sets each constraint (also the cluster file's constraints: keys). */
export const CONSTRAINT_FLAG: Record<keyof PlanConstraints, string> = {
  maxLatency: "--max-latency",
  minThroughput: "--min-fps",
  maxEnergy: "--max-energy",
  maxLinkBytes: "--max-link-bytes",
  devices: "--devices",
  deviceOrder: "--device-order",
};

/** Constraints resolved against a problem, in the form planners use. */
export interface ResolvedConstraints {
  maxLatency: number;
  /** 1 / minThroughput, s (Infinity when unconstrained). */
  maxBottleneck: number;
  maxEnergy: number;
  maxLinkBytes: number;
  /** 1 for devices that may run a stage. */
  allowed: Uint8Array;
  /** Rank of each device in the device order (-1: not in it, so not allowed); undefined without an order. */
  rank?: Int32Array;
}

/** Resolves constraints against a problem; unknown device names raise an ArgumentError naming the field. */
export function resolveConstraints(p: PlanProblem, c: PlanConstraints = {}): ResolvedConstraints {
  const D = p.devices.length;
  const index = new Map(p.devices.map((d, i) => [d.name, i]));
  const lookup = (field: string, name: string) => {
    const i = index.get(name);
    if (i === undefined) {
      throw new ArgumentError(
        `${field}: unknown device '${name}' (devices: ${p.devices.map((d) => d.name).join(", ")})`,
        { field, device: name },
      );
    }
    return i;
  };
  const allowed = new Uint8Array(D).fill(c.devices ? 0 : 1);
  for (const name of c.devices ?? []) allowed[lookup("devices", name)] = 1;
  let rank: Int32Array | undefined;
  if (c.deviceOrder) {
    rank = new Int32Array(D).fill(-1);
    c.deviceOrder.forEach((name, r) => {
      const i = lookup("deviceOrder", name);
      if (rank![i] >= 0)
        throw new ArgumentError(`deviceOrder: '${name}' is listed twice`, { field: "deviceOrder" });
      rank![i] = r;
    });
    for (let d = 0; d < D; d++) if (rank[d] < 0) allowed[d] = 0;
  }
  const positive = (field: string, v: number | undefined) => {
    if (v !== undefined && !(v > 0))
      throw new ArgumentError(`${field}: expected a value > 0, got ${v}`, { field });
    return v;
  };
  const minThroughput = positive("minThroughput", c.minThroughput);
  return {
    maxLatency: positive("maxLatency", c.maxLatency) ?? Number.POSITIVE_INFINITY,
    maxBottleneck: minThroughput !== undefined ? 1 / minThroughput : Number.POSITIVE_INFINITY,
    maxEnergy: positive("maxEnergy", c.maxEnergy) ?? Number.POSITIVE_INFINITY,
    maxLinkBytes: positive("maxLinkBytes", c.maxLinkBytes) ?? Number.POSITIVE_INFINITY,
    allowed,
    ...(rank ? { rank } : {}),
  };
}

/** Constraints with nothing limited but memory. */
export function noConstraints(p: PlanProblem): ResolvedConstraints {
  return resolveConstraints(p, {});
}

const KEYS = ["maxLatency", "minThroughput", "minFps", "maxEnergy", "maxLinkBytes", "devices", "deviceOrder"];

/**
 * Reads a cluster file's `constraints:` section: `maxLatency: 20ms`, `minFps: 30` (or `minThroughput`),
 * `maxEnergy: 0.5J` (or a number of J), `maxLinkBytes: 1MB`, `devices: [a, b]`, `deviceOrder: [a, b, c]`.
 * Errors name `<source>: constraints.<key>`.
 */
export function parseConstraints(obj: Record<string, unknown>, source = "cluster"): PlanConstraints {
  const bad = (key: string, msg: string) =>
    new ArgumentError(
      `${source}: constraints.${key}: ${msg}`,
      { file: source, field: `constraints.${key}` },
      "BAD_CONFIG",
    );
  const out: PlanConstraints = {};
  for (const [key, v] of Object.entries(obj)) {
    if (!KEYS.includes(key)) throw bad(key, `unknown constraint (allowed: ${KEYS.join(", ")})`);
    const str = typeof v === "string" || typeof v === "number" ? v : undefined;
    switch (key) {
      case "maxLatency": {
        const s = str === undefined ? undefined : TIME.parse(str);
        if (s === undefined || !(s > 0))
          throw bad(key, `expected a time like "20ms", got ${JSON.stringify(v)}`);
        out.maxLatency = s;
        break;
      }
      case "minThroughput":
      case "minFps": {
        const f =
          typeof v === "number" ? v : typeof v === "string" ? Number(v.replace(/\s*(fps|\/s)$/, "")) : NaN;
        if (!(f > 0)) throw bad(key, `expected inferences per second like 30, got ${JSON.stringify(v)}`);
        out.minThroughput = f;
        break;
      }
      case "maxEnergy": {
        const e = parseEnergy(v);
        if (e === undefined || !(e > 0))
          throw bad(key, `expected an energy like "0.5J" or "20mJ", got ${JSON.stringify(v)}`);
        out.maxEnergy = e;
        break;
      }
      case "maxLinkBytes": {
        const b = str === undefined ? undefined : BYTES.parse(str);
        if (b === undefined || !(b > 0))
          throw bad(key, `expected bytes like "1MB", got ${JSON.stringify(v)}`);
        out.maxLinkBytes = b;
        break;
      }
      case "devices":
      case "deviceOrder": {
        const list = typeof v === "string" ? v.split(",").map((s) => s.trim()) : v;
        if (
          !Array.isArray(list) ||
          list.length === 0 ||
          !list.every((s) => typeof s === "string" && s !== "")
        )
          throw bad(key, `expected a list of device names, got ${JSON.stringify(v)}`);
        out[key] = list as string[];
        break;
      }
    }
  }
  return out;
}

/** Energy in J: a number, or "0.5J", "20mJ", "300uJ". */
export function parseEnergy(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== "string") return undefined;
  const m = /^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(m|u|µ|n|)J\s*$/.exec(v);
  if (!m) {
    const n = Number(v);
    return v.trim() !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
  }
  const mult: Record<string, number> = { "": 1, m: 1e-3, u: 1e-6, µ: 1e-6, n: 1e-9 };
  return Number(m[1]) * mult[m[2]];
}

/** Constraints `b` overriding `a` field by field (command-line flags over the cluster file). */
export function mergeConstraints(a: PlanConstraints, b: PlanConstraints): PlanConstraints {
  const out: PlanConstraints = { ...a };
  for (const [k, v] of Object.entries(b)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
