import { seededRandom } from "../onnx/prng.js";
import {
  assignDeviceTypes,
  boundaryBytes,
  type PlanProblem,
  type ProblemDevice,
  type ProblemLink,
  type ProblemTensor,
} from "./problem.js";

/** Shape of a random problem. */
export interface RandomProblemOptions {
  /** Positions, default random in [3, 9]. */
  n?: number;
  /** Devices, default random in [1, 4]. */
  devices?: number;
  /** Probability that a device copies an earlier one (identical devices). Default 0.35. */
  identical?: number;
  /** Probability that a copy is scaled (uniformly faster or slower, more or less memory). Default 0. */
  scaled?: number;
  /** Probability of a point-to-point link between two devices (beyond a shared medium). Default 0.6. */
  linkDensity?: number;
  /** Probability that all devices share one medium. Default 0.4. */
  shared?: number;
  /** Two identical shared media instead: device 0 with the odd devices, device 0 with the even ones. */
  splitMedia?: boolean;
  /** Probability that a device's memory is tight (some segments do not fit). Default 0.5. */
  tightMemory?: number;
  /**
   * Probability that the devices share hosts (two hosts, devices assigned by index parity), each device then
   * slowed by a co-run factor in [1, 2) beside another of its host and charged coordinator CPU. Default 0.
   */
  hosts?: number;
  /** Probability that the devices spend CPU time per byte they send or receive. Default 0. */
  transferCpu?: number;
  /**
   * Probability that the input device feeds a first stage elsewhere (`PlanProblem.inputFeed`: an encode priced
   * in the other devices' start costs at boundary 0, and the feed's time). Default 0.
   */
  inputFeed?: number;
}

/**
 * A random planning problem for tests and benchmarks: random latencies (some zero), start/end stage costs,
 * multi-tensor boundaries with skip connections, memory that grows with the segment (weights plus the largest
 * activation), identical devices, point-to-point links and shared media. Deterministic for a seed.
 */
export function randomProblem(seed: number, opts: RandomProblemOptions = {}): PlanProblem {
  const rnd = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const n = opts.n ?? int(3, 9);
  const D = opts.devices ?? int(1, 4);
  const identical = opts.identical ?? 0.35;

  const weight = Float64Array.from({ length: n }, () => Math.floor(rnd() * 100));
  const act = Float64Array.from({ length: n }, () => Math.floor(rnd() * 50));
  const totalMem = weight.reduce((a, b) => a + b, 0) + 60;

  interface Spec {
    lat: Float64Array;
    start: Float64Array;
    end: Float64Array;
    power: number;
    memory: number;
    macs: number;
  }
  const specs: Spec[] = [];
  for (let d = 0; d < D; d++) {
    if (d > 0 && rnd() < identical) {
      const base = specs[int(0, d - 1)];
      if (rnd() < (opts.scaled ?? 0)) {
        const f = 0.5 + rnd();
        specs.push({
          ...base,
          lat: base.lat.map((v) => v * f),
          power: base.power * (0.5 + rnd()),
          memory: base.memory * (f < 1 ? 1.2 : 0.9),
        });
      } else specs.push(base);
      continue;
    }
    const speed = 0.3 + rnd() * 3;
    const lat = Float64Array.from({ length: n }, () => (rnd() < 0.15 ? 0 : (rnd() * 10) / speed));
    const overhead = rnd() * 0.5;
    const start = Float64Array.from({ length: n + 1 }, () => overhead + (rnd() < 0.3 ? rnd() * 0.5 : 0));
    const end = Float64Array.from({ length: n + 1 }, () => (rnd() < 0.3 ? rnd() * 0.5 : 0));
    end[0] = 0;
    end[n] = 0;
    const tight = rnd() < (opts.tightMemory ?? 0.5);
    specs.push({
      lat,
      start,
      end,
      power: 0.5 + rnd() * 5,
      memory: tight ? 40 + rnd() * totalMem * 0.7 : totalMem * 2,
      macs: speed * 1e9,
    });
  }
  const prefix = specs.map((s) => {
    const pre = new Float64Array(n + 1);
    for (let q = 0; q < n; q++) pre[q + 1] = pre[q] + s.lat[q];
    return pre;
  });
  const devices: ProblemDevice[] = specs.map((s, d) => ({
    name: `dev${d}`,
    power: s.power,
    memory: s.memory,
    macsPerSecond: s.macs,
    memoryBandwidth: 1e9,
    type: 0,
  }));
  const memOf = (i: number, j: number) => {
    let w = 10;
    let a = 0;
    for (let q = i; q < j; q++) {
      w += weight[q];
      a = Math.max(a, act[q]);
    }
    return w + a;
  };
  const memEnd = specs.map((s) => {
    const ends = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let j = i;
      while (j < n && memOf(i, j + 1) <= s.memory) j++;
      ends[i] = j;
    }
    return ends;
  });

  // Tensors: the chain, plus skip connections and an early graph output now and then.
  const tensors: ProblemTensor[] = [];
  const mk = (name: string, def: number, uses: number[]) => {
    const u = [...new Set(uses)].sort((a, b) => a - b);
    tensors.push({ name, bytes: Math.floor(1 + rnd() * 200), def, lastUse: u[u.length - 1], uses: u });
  };
  mk("input", -1, [0]);
  for (let q = 0; q < n - 1; q++) mk(`t${q}`, q, [q + 1]);
  mk("output", n - 1, [n]);
  const skips = int(0, Math.ceil(n / 2));
  for (let s = 0; s < skips; s++) {
    const def = int(-1, n - 2);
    const uses = [int(def + 1, n - 1)];
    if (rnd() < 0.5) uses.push(int(def + 1, n));
    mk(`skip${s}`, def, uses);
  }
  const cutBytes = boundaryBytes(n, tensors);

  const links: ProblemLink[] = [];
  const link = (ds: number[]) =>
    links.push({
      name: ds.length === 2 ? `dev${ds[0]}-dev${ds[1]}` : `shared(${ds.join(",")})`,
      devices: ds,
      latency: rnd() * 0.3,
      secondsPerByte: (0.2 + rnd()) / 100,
      joulesPerByte: rnd() * 0.01,
    });
  if (opts.splitMedia && D >= 3) {
    const medium = { latency: rnd() * 0.3, secondsPerByte: (0.2 + rnd()) / 100, joulesPerByte: rnd() * 0.01 };
    for (const parity of [1, 0]) {
      const ds = [0, ...Array.from({ length: D }, (_, i) => i).filter((i) => i > 0 && i % 2 === parity)];
      if (ds.length >= 2) links.push({ name: `medium${parity}(${ds.join(",")})`, devices: ds, ...medium });
    }
  } else if (D >= 3 && rnd() < (opts.shared ?? 0.4)) link(Array.from({ length: D }, (_, i) => i));
  const density = opts.linkDensity ?? 0.6;
  for (let a = 0; a < D; a++) for (let b = a + 1; b < D; b++) if (rnd() < density) link([a, b]);
  const linkIndex = new Int32Array(D * D).fill(-1);
  links.forEach((l, li) => {
    for (const a of l.devices) {
      for (const b of l.devices) {
        if (a === b) continue;
        const cur = linkIndex[a * D + b];
        if (cur < 0 || l.secondsPerByte < links[cur].secondsPerByte) linkIndex[a * D + b] = li;
      }
    }
  });

  const p: PlanProblem = {
    n,
    devices,
    links,
    linkIndex,
    inputDevice: int(0, D - 1),
    outputDevice: int(0, D - 1),
    prefix,
    startCost: specs.map((s) => s.start),
    endCost: specs.map((s) => s.end),
    macs: Float64Array.from({ length: n }, () => Math.floor(rnd() * 1e6)),
    cutBytes,
    tensors,
    memEnd,
    memory: (_d, i, j) => memOf(i, j),
    setCost(d, positions) {
      let time = specs[d].start[0];
      let w = 10;
      let a = 0;
      for (const q of positions) {
        time += specs[d].lat[q];
        w += weight[q];
        a = Math.max(a, act[q]);
      }
      return { time, memory: w + a };
    },
  };
  assignDeviceTypes(p);
  let devs: readonly ProblemDevice[] = p.devices;
  if (rnd() < (opts.hosts ?? 0)) {
    // Per device type, so interchangeable devices stay interchangeable.
    const byType = new Map<number, { coRun: number; coord: number }>();
    devs.forEach((d) => {
      if (!byType.has(d.type)) byType.set(d.type, { coRun: 1 + rnd(), coord: rnd() < 0.5 ? rnd() * 0.3 : 0 });
    });
    devs = devs.map((d, i) => {
      const t = byType.get(d.type)!;
      return { ...d, host: i % 2, coRun: t.coRun, ...(t.coord > 0 ? { coordinatorCpu: t.coord } : {}) };
    });
  }
  if (rnd() < (opts.transferCpu ?? 0)) {
    const io = rnd() * 0.002;
    devs = devs.map((d) => ({ ...d, transferCpu: io }));
  }
  const out = devs === p.devices ? p : { ...p, devices: devs };
  if (rnd() < (opts.inputFeed ?? 0)) {
    const encode = rnd() < 0.2 ? 0 : rnd() * 0.5;
    const feed = encode + rnd() * 4;
    const startCost = out.startCost.map((a, d) => {
      if (d === out.inputDevice) return a;
      const b = Float64Array.from(a);
      b[0] += encode;
      return b;
    });
    return { ...out, startCost, inputFeed: { encode, feed } };
  }
  return out;
}
