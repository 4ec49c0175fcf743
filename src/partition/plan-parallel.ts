import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { TiledCostModel } from "../cost/cost-tiled.js";
import { ArgumentError } from "../errors.js";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { type TiledModel, type TileStackSpec, tileModel } from "../ir/tile.js";
import { EXACT_PLACEMENTS } from "./branch-candidates.js";
import { type StageAssignment, validateAssignment } from "./assign.js";
import { type DagEvaluation, type DagStage, evaluateDag } from "./evaluate-dag.js";
import { CONSTRAINT_FLAG, type PlanConstraints } from "./constraints.js";
import { fmtSeconds } from "./fmt.js";
import type { PartitionOrder } from "./order.js";
import type { ClusterPlan, RunnableSplit } from "./plan-cluster.js";
import type { Plan, PlanLink, PlanStage, PlanTiles } from "./plan.js";
import { type ParallelSearch, searchParallel } from "./planner-parallel.js";
import { buildProblem, type PlanProblem } from "./problem.js";
import { tileCandidates } from "./tile-candidates.js";
import { isSpatialOp } from "../ir/tile-rows.js";

/** A plan with tiled stacks, built: the tiled model, its stages, and their prediction. */
export interface ParallelPlan {
  search: ParallelSearch;
  specs: TileStackSpec[];
  tiled: TiledModel;
  /** The tiled model analysed, the order its stages are contiguous in, and its planning problem. */
  model: AnalyzedModel;
  order: PartitionOrder;
  problem: PlanProblem;
  assignment: StageAssignment;
  stages: DagStage[];
  evaluation: DagEvaluation;
}

/**
 * The tiled model a plan runs (`plan.tiles` set: the model tiled as recorded), else the model itself.
 * `split`, `run`, `bench` and `serve` call this before turning the plan's stages into an assignment.
 */
export async function modelForPlan(model: AnalyzedModel, plan: Pick<Plan, "tiles">): Promise<AnalyzedModel> {
  if (!plan.tiles) return model;
  const tiled = tileModel(model, plan.tiles.stacks, { slicesFirst: true });
  return analyzeModel(tiled.model, {
    source: model.graph.source,
    noFold: true,
    inputShapes: shapesOf(model),
  });
}

function shapesOf(model: AnalyzedModel): Record<string, number[]> {
  return Object.fromEntries(model.graph.inputs.map((v) => [v.name, model.types.get(v.name)!.shape]));
}

/**
 * Builds the plan the latency search found: tiles the stacks, assigns every node of the tiled model to a
 * stage (a one-device segment; each tile, with the Slices that cut its rows made where its input is, so a
 * tile receives only its rows; the join with what follows on its device), and prices the stages as a graph
 * with {@link evaluateDag}, the tiled model priced from the original's cost model.
 */
export async function buildParallelPlan(
  model: AnalyzedModel,
  order: PartitionOrder,
  search: ParallelSearch,
  cluster: Cluster,
  cost: CostModel,
): Promise<ParallelPlan> {
  const specs: TileStackSpec[] = [];
  for (const s of search.segments)
    if (s.kind === "tiles")
      specs.push({
        from: s.from,
        to: s.to,
        tiles: s.devices.length,
        weights: s.weights,
        ...(s.fromTiles ? { fromTiles: true } : {}),
      });
  const tiled = tileModel(model, specs, { slicesFirst: true });
  const tmodel = await analyzeModel(tiled.model, {
    source: model.graph.source,
    noFold: true,
    inputShapes: shapesOf(model),
  });
  const stageOfName = new Map<string, number>();
  const devices: number[] = [];
  const open = (device: number) => {
    devices.push(device);
    return devices.length - 1;
  };
  let pendingJoin: { name: string; device: number } | undefined;
  let lastStage = -1;
  let tileStages: number[] = [];
  let t = 0;
  for (const [k, seg] of search.segments.entries()) {
    if (seg.kind === "one") {
      const st = open(seg.device);
      if (pendingJoin && pendingJoin.device !== seg.device) {
        // The join runs where the tiles were gathered, then its output moves on.
        devices[st] = pendingJoin.device;
        stageOfName.set(pendingJoin.name, st);
        const st2 = open(seg.device);
        for (let q = seg.start; q < seg.end; q++)
          stageOfName.set(model.graph.nodes[order.nodes[q]].name, st2);
        lastStage = st2;
      } else {
        if (pendingJoin) stageOfName.set(pendingJoin.name, st);
        for (let q = seg.start; q < seg.end; q++) stageOfName.set(model.graph.nodes[order.nodes[q]].name, st);
        lastStage = st;
      }
      pendingJoin = undefined;
      continue;
    }
    if (seg.kind === "branches") {
      if (pendingJoin) {
        lastStage = open(pendingJoin.device);
        stageOfName.set(pendingJoin.name, lastStage);
        pendingJoin = undefined;
      }
      // One stage per device holding branches of the region, all reading the fork tensor at once.
      const stageOfDevice = new Map<number, number>();
      seg.branches.forEach((positions, b) => {
        const d = seg.devices[b];
        let st = stageOfDevice.get(d);
        if (st === undefined) {
          st = open(d);
          stageOfDevice.set(d, st);
        }
        for (const q of positions) stageOfName.set(model.graph.nodes[order.nodes[q]].name, st);
        lastStage = st;
      });
      if (seg.joinAt !== undefined)
        pendingJoin = { name: model.graph.nodes[order.nodes[seg.joinAt]].name, device: seg.join };
      continue;
    }
    const stack = tiled.stacks[t++];
    if (pendingJoin) {
      lastStage = open(pendingJoin.device);
      stageOfName.set(pendingJoin.name, lastStage);
      pendingJoin = undefined;
    }
    const scatterHere = lastStage >= 0;
    // The Slices that cut this stack's rows out of the previous stack's tiles run with those tiles.
    for (const h of stack.handoff) stageOfName.set(h.node, tileStages[h.tile]);
    tileStages = seg.devices.map((d, j) => {
      const st = open(d);
      const scatter = new Set(stack.scatter[j]);
      for (const name of stack.tileNodes[j])
        stageOfName.set(name, scatterHere && scatter.has(name) ? lastStage : st);
      return st;
    });
    // Tiles handed on to the next stack have no join (or one a later reader needs, run with the first tile).
    if (stack.join !== undefined)
      pendingJoin = seg.join >= 0 ? { name: stack.join, device: seg.join } : undefined;
    if (stack.join !== undefined && seg.join < 0) stageOfName.set(stack.join, tileStages[0]);
    void k;
  }
  if (pendingJoin) stageOfName.set(pendingJoin.name, open(pendingJoin.device));
  const stageOf = new Int32Array(tmodel.graph.nodes.length).fill(-1);
  for (const n of tmodel.graph.nodes) {
    if (n.isConstant) continue;
    const s = stageOfName.get(n.name);
    if (s === undefined)
      throw new ArgumentError(`tiled plan: node '${n.name}' is in no stage`, { node: n.name });
    stageOf[n.index] = s;
  }
  // Drop stages left empty (a join merged away), renumbering in order.
  const used = [...new Set(stageOf.filter((s) => s >= 0))].sort((a, b) => a - b);
  const renum = new Map(used.map((s, i) => [s, i]));
  for (let i = 0; i < stageOf.length; i++) if (stageOf[i] >= 0) stageOf[i] = renum.get(stageOf[i])!;
  const stageDevices = used.map((s) => devices[s]);
  const assignment = { stageOf, count: used.length };
  validateAssignment(tmodel, assignment);
  const nodes = tmodel.graph.nodes
    .filter((n) => !n.isConstant)
    .sort((a, b) => stageOf[a.index] - stageOf[b.index] || a.index - b.index)
    .map((n) => n.index);
  const position = new Int32Array(tmodel.graph.nodes.length).fill(-1);
  nodes.forEach((i, q) => {
    position[i] = q;
  });
  const order2: PartitionOrder = { nodes, position, strategy: "file" };
  const tcost = new TiledCostModel(cost, model, tmodel, tiled.origin);
  const problem = buildProblem(tmodel, order2, cluster, tcost);
  const stages: DagStage[] = [];
  nodes.forEach((i, q) => {
    const s = stageOf[i];
    if (stages[s]) stages[s].end = q + 1;
    else stages[s] = { device: stageDevices[s], start: q, end: q + 1 };
  });
  return {
    search,
    specs,
    tiled,
    model: tmodel,
    order: order2,
    problem,
    assignment,
    stages,
    evaluation: evaluateDag(problem, stages),
  };
}

/** Searches the latency plan space with tiles and branches; undefined when it holds no plan. */
export async function planParallel(
  model: AnalyzedModel,
  order: PartitionOrder,
  problem: PlanProblem,
  cluster: Cluster,
  cost: CostModel,
  opts: { tiles?: number } = {},
): Promise<ParallelPlan | undefined> {
  const search = searchParallel(model, order, problem, opts);
  if (!search) return undefined;
  return buildParallelPlan(model, order, search, cluster, cost);
}

/**
 * The plan file of a tiled plan: `base` (the plan without tiles, whose baselines and constraints it keeps)
 * with the tiled stages, their transfers and totals, and `tiles` (the stacks, so split and run rebuild the
 * same tiled model).
 */
export function parallelPlanFile(base: Plan, pp: ParallelPlan, ms: number): Plan {
  const p = pp.problem;
  const { graph } = pp.model;
  const name = (d: number) => p.devices[d].name;
  const S = pp.stages.length;
  const stageOfPos = new Int32Array(p.n);
  pp.stages.forEach((s, k) => {
    for (let q = s.start; q < s.end; q++) stageOfPos[q] = k;
  });
  const stages: PlanStage[] = pp.stages.map((s, k) => {
    const inputs = p.tensors
      .filter(
        (t) => (t.def < 0 || stageOfPos[t.def] !== k) && t.uses.some((u) => u < p.n && stageOfPos[u] === k),
      )
      .map((t) => t.name)
      .sort();
    const ev = pp.evaluation.stages[k];
    return {
      index: k,
      device: name(s.device),
      start: s.start,
      end: s.end,
      nodes: pp.order.nodes.slice(s.start, s.end).map((i) => graph.nodes[i].name),
      inputs,
      latency: ev.time,
      memory: p.memory(s.device, s.start, s.end),
      energy: ev.time * p.devices[s.device].power,
    };
  });
  const links: PlanLink[] = pp.evaluation.transfers.map((t) => ({
    from: name(t.from),
    to: name(t.to),
    fromStage: t.fromStage,
    toStage: t.toStage === S ? S : t.toStage,
    link: t.link >= 0 ? p.links[t.link].name : "none",
    bytes: t.bytes,
    time: t.finish - t.start,
    energy: t.energy,
  }));
  const busy = new Float64Array(p.devices.length);
  for (const s of pp.evaluation.stages) busy[s.device] += s.time;
  const bottleneck = Math.max(...busy);
  const tiles: PlanTiles = {
    stacks: pp.specs,
    timeline: pp.evaluation.stages.map((s) => ({ start: s.start, finish: s.finish })),
    haloMacs: pp.tiled.stacks.reduce((sum, st) => sum + (st.tiledMacs - st.macs), 0),
    estimate: pp.search.estimate,
    branchRegions: pp.search.segments.filter((s) => s.kind === "branches").length,
  };
  const { regions, greedyRegions } = pp.search;
  return {
    ...base,
    order: "file",
    planner: {
      method: "parallel-dp",
      exact: false,
      lowerBound: null,
      labels: pp.search.priced,
      ms,
      limited:
        `optimal over segments at single-tensor cuts, each on one device, tiled across devices, or a fork/join region with its branches on several devices (estimate; ${regions} regions, ` +
        (greedyRegions > 0
          ? `${greedyRegions} with more than ${EXACT_PLACEMENTS} branch placements placed greedily, largest branch first`
          : "every branch placement tried") +
        "; link contention and co-running priced only in the stage graph)",
    },
    stages,
    links,
    totals: {
      latency: pp.evaluation.latency,
      throughput: bottleneck > 0 ? 1 / bottleneck : Number.POSITIVE_INFINITY,
      energy: pp.evaluation.energy,
    },
    baselines: base.baselines.map((b) => ({
      ...b,
      ratio: b.totals.latency === null ? null : b.totals.latency / pp.evaluation.latency,
    })),
    tiles,
  };
}

/**
 * Least relative latency gain for tiles or branches to be chosen over the plan without them (unless forced
 * with `tiles`). Each stage and hop they add costs what the prices miss (frames, event loops, the coordinator's
 * share of the cores): EfficientNet-B0 on the local pair planned one tile stack predicted 1% lower (12.05 vs
 * 12.15 ms) and measured 8% higher (14.4 vs 13.3 ms p50).
 */
export const PARALLEL_MIN_GAIN = 0.05;

/**
 * The latency plan with tiles and branches where they pay: searches the space (with `tiles`: at least one
 * stack of that many tiles) and returns its plan file when it predicts a latency at least `minGain` (default
 * {@link PARALLEL_MIN_GAIN}) below `base`'s (or always, when tiles are forced), else undefined, telling
 * `opts.declined` why (for the plan's `planner.parallel`).
 */
export async function parallelPlanFor(
  base: Plan,
  model: AnalyzedModel,
  order: PartitionOrder,
  problem: PlanProblem,
  cluster: Cluster,
  cost: CostModel,
  opts: { tiles?: number; spatial?: boolean; minGain?: number; declined?: (why: string) => void } = {},
): Promise<{ plan: Plan; parallel: ParallelPlan } | undefined> {
  const decline = (why: string) => {
    opts.declined?.(why);
    return undefined;
  };
  const t0 = performance.now();
  // The tiled plan space honours memory and a latency limit; the other constraints keep today's plans.
  const c = base.constraints as PlanConstraints;
  const other = (["minThroughput", "maxEnergy", "maxLinkBytes", "devices", "deviceOrder"] as const).filter(
    (k) => c[k] !== undefined,
  );
  const flags = other.map((k) => CONSTRAINT_FLAG[k]).join(", ");
  if (other.length > 0) {
    if (opts.tiles !== undefined)
      throw new ArgumentError(`--tiles cannot be combined with ${flags} yet: drop one`, {
        field: "tiles",
      });
    return decline(`tiles and branches are not planned with ${flags} yet`);
  }
  const search = searchParallel(model, order, problem, opts);
  if (!search) {
    if (opts.tiles !== undefined)
      throw new ArgumentError(
        `--tiles ${opts.tiles}: no stack of ${model.graph.source} can be split into ${opts.tiles} row tiles (${whyNoStack(model, order, opts.tiles)})`,
        { field: "tiles" },
      );
    return decline(
      `no run of spatial layers to tile${opts.spatial === false ? " (--no-tiles)" : ""} and no fork/join region to place`,
    );
  }
  if (opts.tiles === undefined && !search.segments.some((s) => s.kind !== "one"))
    return decline("no tiles or branches the search found lower the latency");
  const pp = await buildParallelPlan(model, order, search, cluster, cost);
  const minGain = opts.minGain ?? PARALLEL_MIN_GAIN;
  if (opts.tiles === undefined && !(pp.evaluation.latency < base.totals.latency * (1 - minGain))) {
    const gain = 1 - pp.evaluation.latency / base.totals.latency;
    const what = (["tiles", "branches"] as const)
      .filter((k) => search.segments.some((s) => s.kind === k))
      .join(" and ");
    return decline(
      `${what} side by side predicted ${fmtSeconds(pp.evaluation.latency)}, ${Math.abs(100 * gain).toFixed(1)}% ${gain >= 0 ? "below" : "above"} ${fmtSeconds(base.totals.latency)}: under the ${+(100 * minGain).toFixed(2)}% least gain (--min-gain)`,
    );
  }
  const plan = parallelPlanFile(base, pp, performance.now() - t0);
  const over = plan.stages.find((s) => s.memory > pp.problem.devices[pp.stages[s.index].device].memory);
  const late = c.maxLatency !== undefined && plan.totals.latency > c.maxLatency;
  if (over || late) {
    if (opts.tiles !== undefined)
      throw new ArgumentError(
        over
          ? `--tiles ${opts.tiles}: stage ${over.index} needs more memory than device '${over.device}' has`
          : `--tiles ${opts.tiles}: the tiled plan's latency is over --max-latency`,
        { field: "tiles", ...(over ? { device: over.device } : {}) },
      );
    return decline(
      over
        ? `the plan with tiles or branches needs more memory than device '${over.device}' has`
        : "the plan with tiles or branches is over --max-latency",
    );
  }
  return { plan, parallel: pp };
}

/**
 * The latency plan with tiles beside a planned split, runnable (its `model` is the tiled model), or undefined
 * when tiles do not predict a lower latency than the plan. For `bench` with objective latency.
 */
export async function tiledSplit(
  model: AnalyzedModel,
  planned: ClusterPlan,
  cluster: Cluster,
  cost: CostModel,
): Promise<RunnableSplit | undefined> {
  const problem = buildProblem(model, planned.order, cluster, cost);
  const par = await parallelPlanFor(planned.plan, model, planned.order, problem, cluster, cost);
  if (!par) return undefined;
  return {
    name: "tiles",
    model: par.parallel.model,
    assignment: par.parallel.assignment,
    devices: par.plan.stages.map((s) => [s.device]),
    throughput: par.plan.totals.throughput,
    latency: par.plan.totals.latency,
  };
}

/**
 * The order a tiled or branch plan's positions refer to: the model's compute nodes sorted by stage, then by
 * file position (as {@link buildParallelPlan} orders them), so every stage is contiguous.
 */
export function planStageOrder(model: AnalyzedModel, stageOf: Int32Array): PartitionOrder {
  const nodes = model.graph.nodes
    .filter((n) => !n.isConstant && stageOf[n.index] >= 0)
    .sort((a, b) => stageOf[a.index] - stageOf[b.index] || a.index - b.index)
    .map((n) => n.index);
  const position = new Int32Array(model.graph.nodes.length).fill(-1);
  nodes.forEach((i, q) => {
    position[i] = q;
  });
  return { nodes, position, strategy: "file" };
}

/** Why no stack takes `tiles` row tiles: the tallest stack's rows, naming its last layer, or the layer that mixes positions. */
function whyNoStack(model: AnalyzedModel, order: PartitionOrder, tiles: number): string {
  let tallest: { rows: number; to: string } | undefined;
  for (const c of tileCandidates(model, order)) {
    const rows = model.types.get(c.to)?.shape[2] ?? 0;
    if (!tallest || rows > tallest.rows) tallest = { rows, to: c.to };
  }
  if (tallest) {
    const layer = model.graph.values.get(tallest.to)?.producer;
    return `the tallest tile stack ends at layer '${layer?.name ?? tallest.to}' with ${tallest.rows} rows, fewer than ${tiles}`;
  }
  const mixer = order.nodes.map((i) => model.graph.nodes[i]).find((n) => !isSpatialOp(n.op));
  return mixer
    ? `a tile stack needs layers that keep spatial locality between two single-tensor cuts; layer '${mixer.name}' (${mixer.op}) mixes positions`
    : "a tile stack needs layers that keep spatial locality between two single-tensor cuts";
}
