import type { AnalyzedModel } from "../ir/analyze.js";
import { dtypeSize } from "../onnx/dtype.js";
import { tileRows } from "../ir/tile.js";
import type { Rows } from "../ir/tile-rows.js";
import type { PartitionOrder } from "./order.js";
import { linkOf, type PlanProblem, stageTime, transferCost } from "./problem.js";
import { branchRegions, placeBranches } from "./branch-candidates.js";
import { tileBoundaries, tileCandidates } from "./tile-candidates.js";

/**
 * The latency planner's plan space: the partition order cut at tile boundaries (single NCHW tensors) into a
 * sequence of segments, each run on one device, or split into row tiles run by several devices at once and
 * joined on one device.
 */
export type ParallelSegment =
  | { kind: "one"; start: number; end: number; device: number }
  | {
      kind: "tiles";
      start: number;
      end: number;
      from: string;
      to: string;
      /** Device of each tile, and the tile sizes (in proportion to the devices' speed on the stack). */
      devices: number[];
      weights: number[];
      /** Device that joins the tiles (runs the Concat); -1 when the next stack reads the tiles (`fromTiles`). */
      join: number;
      /** The tiles read the previous stack's tiles, gathering their rows and halo there (no join between). */
      fromTiles?: boolean;
    }
  | {
      kind: "branches";
      start: number;
      end: number;
      /** Device of each branch of the region (in {@link BranchRegion} order), and the device of the join. */
      devices: number[];
      branches: number[][];
      /** Order position of the join node (absent: the branches are the graph's outputs). */
      joinAt?: number;
      join: number;
    };

/** Options of {@link searchParallel}. */
export interface ParallelSearchOptions {
  /** Force this many tiles in one stack at least (`--tiles K`); absent: any number from 2 to the device count, or none. */
  tiles?: number;
  /**
   * Most tile stacks in one plan (default 4): each adds a stage per device, and a worker receives at most 16
   * stage models at once, so a plan stays deployable.
   */
  maxStacks?: number;
  /** Place independent branches of fork/join regions on different devices (default true). */
  branches?: boolean;
  /** Split spatial stacks into row tiles (default true). */
  spatial?: boolean;
}

/** The best plan of the space found by the dynamic program, with its estimated latency, s. */
export interface ParallelSearch {
  segments: ParallelSegment[];
  estimate: number;
  /** Tiled segments priced. */
  priced: number;
  /** Fork/join regions found, and those whose placement was greedy (more than EXACT_PLACEMENTS placements). */
  regions: number;
  greedyRegions: number;
}

/** Subsets of `devices` of the given sizes, each listed in device order. */
function subsets(devices: number, sizes: (k: number) => boolean): number[][] {
  const out: number[][] = [];
  for (let mask = 1; mask < 1 << devices; mask++) {
    const set: number[] = [];
    for (let d = 0; d < devices; d++) if (mask & (1 << d)) set.push(d);
    if (sizes(set.length)) out.push(set);
  }
  return out;
}

/**
 * Dynamic program over the segments of the plan space, state (boundary, device holding the tensor there,
 * how many stacks were tiled so far, at most `maxStacks`): exact for that space under the estimate it prices with. A segment on one
 * device costs its stage time plus the transfer of the boundary tensor to it; a tiled segment costs the
 * slowest tile: sending its input rows (halo included; the whole tensor when it is a graph input), its
 * compute (each layer's time times the share of rows the tile computes) and sending its output rows to the
 * joining device. A stack may instead leave its output spread over its tiles' devices (a second kind of
 * state: the rows each device holds and when each is ready), and a next stack on the same devices then reads
 * it there, each tile waiting only for the rows it needs (its own device's at once, the halo from its
 * neighbours over the link): no join, no scatter, only halo rows move. Tiles run on distinct devices; with
 * `tiles` above the device count, tiles go round-robin and those on one device add up. Undefined when no plan of the space exists (e.g. a forced tiling and no
 * tileable stack).
 */
export function searchParallel(
  model: AnalyzedModel,
  order: PartitionOrder,
  p: PlanProblem,
  opts: ParallelSearchOptions = {},
): ParallelSearch | undefined {
  const n = p.n;
  const D = p.devices.length;
  const tb = tileBoundaries(model, order);
  // A forced tiling counts tile stacks only, so branch regions stay out of its space.
  const regions = opts.branches === false || opts.tiles !== undefined ? [] : branchRegions(model, order, p);
  const regionAt = new Map(regions.map((r) => [`${r.start}:${r.end}`, r]));
  let greedyRegions = 0;
  const tileBounds = opts.spatial === false ? [] : [...tb.keys()];
  const bounds = [...new Set([0, n, ...tileBounds, ...regions.flatMap((r) => [r.start, r.end])])].sort(
    (a, b) => a - b,
  );
  const at = new Map(bounds.map((b, i) => [b, i]));
  const spans = new Map<string, { from: string; to: string }>();
  if (opts.spatial !== false)
    for (const c of tileCandidates(model, order)) spans.set(`${c.start}:${c.end}`, c);
  const tx = (a: number, b: number, bytes: number) => {
    if (a === b || bytes <= 0) return 0;
    const l = linkOf(p, a, b);
    return l < 0 ? Number.POSITIVE_INFINITY : transferCost(p, l, bytes).time;
  };
  const lat = (d: number, q: number) => p.prefix[d][q + 1] - p.prefix[d][q];
  const forced = opts.tiles;
  const placements =
    forced === undefined
      ? subsets(D, (k) => k >= 2)
      : forced <= D
        ? subsets(D, (k) => k === forced)
        : [Array.from({ length: forced }, (_, j) => j % D)];
  /**
   * How a state was reached: the segment, and the state before it (boundary `prev`, device `d`, stacks
   * `used`), or the tiles it read (`dist`).
   */
  type Back = { prev: number; d: number; used: number; seg: ParallelSegment; dist?: Spread };
  /**
   * The boundary tensor held as row tiles, not joined: tile k's rows `rows[k]` on `devices[k]`, ready at
   * `ready[k]` s. A next stack on the same devices gathers only the rows (halo included) each tile needs.
   * One kept per (boundary, placement, stacks used): the one whose last tile is ready first.
   */
  type Spread = { devices: number[]; rows: Rows[]; ready: number[]; back: Back };
  const B = bounds.length;
  const M = opts.maxStacks ?? 4;
  const U = M + 1;
  const f = Array.from({ length: B }, () =>
    Array.from({ length: D }, () => new Array<number>(U).fill(Infinity)),
  );
  const back: (Back | undefined)[][][] = Array.from({ length: B }, () =>
    Array.from({ length: D }, () => new Array<Back | undefined>(U).fill(undefined)),
  );
  const spread: Map<string, Spread>[] = Array.from({ length: B }, () => new Map());
  f[0][p.inputDevice][0] = 0;
  const rowBytes = (t: string) => bytesPerRow(model, t);
  let priced = 0;
  const relax = (j: number, e: number, used: number, v: number, b: Back) => {
    if (v < f[j][e][used]) {
      f[j][e][used] = v;
      back[j][e][used] = b;
    }
  };
  for (let i = 0; i < B; i++) {
    const x = bounds[i];
    for (let j = i + 1; j < B; j++) {
      const y = bounds[j];
      for (let d = 0; d < D; d++) {
        for (let used = 0; used < U; used++) {
          const base = f[i][d][used];
          if (base === Infinity) continue;
          for (let e = 0; e < D; e++) {
            const v = base + tx(d, e, p.cutBytes[x]) + stageTime(p, e, x, y);
            relax(j, e, used, v, { prev: i, d, used, seg: { kind: "one", start: x, end: y, device: e } });
          }
        }
      }
      const region = regionAt.get(`${x}:${y}`);
      if (region) {
        for (let d = 0; d < D; d++) {
          const joins = region.join === undefined ? [p.outputDevice] : [...Array(D).keys()];
          for (const e of joins) {
            const pl = placeBranches(p, region, d, e, tx);
            if (!pl.exact && d === 0 && e === joins[0]) greedyRegions++;
            if (new Set(pl.devices).size < 2) continue; // all on one device: the "one" segment covers it
            for (let used = 0; used < M; used++) {
              const base = f[i][d][used];
              if (base === Infinity) continue;
              relax(j, e, used + 1, base + pl.time, {
                prev: i,
                d,
                used,
                seg: {
                  kind: "branches",
                  start: x,
                  end: y,
                  devices: pl.devices,
                  branches: region.branches.map((b) => b.positions),
                  ...(region.join !== undefined ? { joinAt: region.join } : {}),
                  join: e,
                },
              });
            }
          }
        }
      }
      const span = spans.get(`${x}:${y}`);
      if (!span) continue;
      for (const [pi, devices] of placements.entries()) {
        const weights = devices.map((s) => 1 / Math.max(1e-12, stageTime(p, s, x, y)));
        let rows: ReturnType<typeof tileRows>;
        try {
          rows = tileRows(model, { from: span.from, to: span.to, tiles: devices.length, weights });
        } catch {
          continue; // too few rows for this many tiles
        }
        // The rewrite replaces exactly the stack's layers, or the plan would lose one.
        if (rows.nodes.length !== y - x) continue;
        priced++;
        const fromInput = x === 0 || model.graph.values.get(span.from)?.kind === "input";
        const inBytes = rows.tiles.map((t) => {
          const r = t.need.get(span.from)!;
          return fromInput ? p.cutBytes[x] : (r.b - r.a) * rowBytes(span.from);
        });
        const outBytes = rows.rows.map((r) => (r.b - r.a) * rowBytes(span.to));
        const compute = rows.tiles.map((t, k) => {
          const s = devices[k];
          let time = p.startCost[s][x] + p.endCost[s][y];
          for (const node of rows.nodes) {
            const plan = t.plans.get(node.index);
            if (!plan) continue;
            const made = plan.computes ?? t.need.get(node.outputs[0])!;
            const h = model.types.get(node.outputs[0])!.shape[2];
            time += lat(s, order.position[node.index]) * ((made.b - made.a) / h);
          }
          return time;
        });
        const seg = (join: number, fromTiles: boolean): ParallelSegment => ({
          kind: "tiles",
          start: x,
          end: y,
          from: span.from,
          to: span.to,
          devices,
          weights,
          join,
          ...(fromTiles ? { fromTiles: true } : {}),
        });
        // From each tile's input ready time: the tiles' finish times (tiles sharing a device run one after
        // another there), then the states they lead to, joined on each device and left spread.
        const finish = (ready: number[]): number[] => {
          const busy = new Float64Array(D);
          return devices.map((s, k) => {
            busy[s] = Math.max(busy[s], ready[k]) + compute[k];
            return busy[s];
          });
        };
        const advance = (ready: number[], used: number, from: Omit<Back, "seg">) => {
          const fin = finish(ready);
          for (let e = 0; e < D; e++) {
            let worst = 0;
            devices.forEach((s, k) => {
              worst = Math.max(worst, fin[k] + tx(s, e, outBytes[k]));
            });
            relax(j, e, used + 1, worst, { ...from, seg: seg(e, from.dist !== undefined) });
          }
          if (used + 1 >= M) return; // a spread state feeds one more stack
          const key = `${pi}:${used + 1}`;
          const held = spread[j].get(key);
          if (!held || Math.max(...fin) < Math.max(...held.ready))
            spread[j].set(key, {
              devices,
              rows: rows.rows,
              ready: fin,
              back: { ...from, seg: seg(-1, from.dist !== undefined) },
            });
        };
        for (let d = 0; d < D; d++) {
          for (let used = 0; used < M; used++) {
            const base = f[i][d][used];
            if (base === Infinity) continue;
            advance(
              devices.map((s, k) => base + tx(d, s, inBytes[k])),
              used,
              { prev: i, d, used },
            );
          }
        }
        // From the previous stack's tiles on the same devices: each tile's rows of the boundary tensor
        // arrive from the tiles that hold them (its own device's at once, the halo over the link).
        if (!fromInput)
          for (let used = 1; used < M; used++) {
            const held = spread[i].get(`${pi}:${used}`);
            if (!held) continue;
            const ready = rows.tiles.map((t, k) => {
              const want = t.need.get(span.from)!;
              let at = 0;
              held.rows.forEach((own, q) => {
                const overlap = Math.min(want.b, own.b) - Math.max(want.a, own.a);
                if (overlap > 0)
                  at = Math.max(
                    at,
                    held.ready[q] + tx(held.devices[q], devices[k], overlap * rowBytes(span.from)),
                  );
              });
              return at;
            });
            advance(ready, used, { prev: i, d: -1, used, dist: held });
          }
      }
    }
  }
  const last = at.get(n)!;
  let best = Infinity;
  let bestD = -1;
  let bestUsed = -1;
  for (let d = 0; d < D; d++) {
    for (let used = forced === undefined ? 0 : 1; used < U; used++) {
      const v = f[last][d][used] + tx(d, p.outputDevice, p.cutBytes[n]);
      if (v < best) {
        best = v;
        bestD = d;
        bestUsed = used;
      }
    }
  }
  if (bestD < 0 || best === Infinity) return undefined;
  const segments: ParallelSegment[] = [];
  let b = back[last][bestD][bestUsed];
  while (b) {
    segments.unshift(b.seg);
    b = b.dist ? b.dist.back : b.prev > 0 ? back[b.prev][b.d][b.used] : undefined;
  }
  return { segments: mergeOnes(segments), estimate: best, priced, regions: regions.length, greedyRegions };
}

/** Bytes of one row (along height) of an NCHW tensor. */
function bytesPerRow(model: AnalyzedModel, t: string): number {
  const ty = model.types.get(t)!;
  const elems = ty.shape[0] * ty.shape[1] * ty.shape[3];
  return elems * dtypeSize(ty.dtype);
}

/** Adjacent one-device segments on the same device become one. */
function mergeOnes(segments: ParallelSegment[]): ParallelSegment[] {
  const out: ParallelSegment[] = [];
  for (const s of segments) {
    const prev = out[out.length - 1];
    if (prev?.kind === "one" && s.kind === "one" && prev.device === s.device) prev.end = s.end;
    else out.push({ ...s });
  }
  return out;
}
