import { BYTES, TIME, unitProblem } from "../cluster/units.js";
import { costModelFor } from "../cost/cost-factory.js";
import { loadProfile, type Profile } from "../cost/profile.js";
import { checkOutputFile } from "../output-file.js";
import { ArgumentError } from "../errors.js";
import {
  mergeConstraints,
  OBJECTIVES,
  type Objective,
  type PlanConstraints,
  parseConstraints,
  parseEnergy,
} from "../partition/constraints.js";
import { type Plan, stageDevices, writePlan } from "../partition/plan.js";
import { makePlan } from "../partition/planner.js";
import { clusterFromFlags } from "./cluster-flag.js";
import {
  bool,
  type Command,
  list,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  str,
} from "./command.js";
import { fmtBytes, fmtGroup, fmtTime, type Style, style, table } from "./format.js";
import { withLocalProfiles } from "./local-profiles.js";
import { progress } from "./progress.js";
import { loadForCli } from "./load.js";
import {
  FIDELITY_FLAGS,
  FIDELITY_USAGE,
  fidelityFromFlags,
  planUnderBudget,
  renderEncodings,
} from "./fidelity-flags.js";
import { PARALLEL_MIN_GAIN, parallelPlanFor } from "../partition/plan-parallel.js";

const USAGE = `usage: cleave plan <model.onnx | zoo:NAME> [--cluster c.yaml | NAME] [--objective latency|throughput|energy]
                   [--max-latency 20ms] [--min-fps 30] [--max-energy 0.5J] [--max-link-bytes 4MB]
                   [--devices a,b] [--device-order a,b,c] [--pareto] [--no-local] [--no-replicas]
                   [--time-limit ms] [--tiles K] [--no-tiles] [--no-parallel] [--min-gain 5%]
                   [--profile device=profile.json ...] [model input flags] [--json] [-o plan.json]

Chooses where to cut the model and which device runs each stage, optimally for the objective (default
latency) under the constraints: memory per device always; the limits below, from flags or the cluster
file's constraints: section (flags win). A stage runs on one device or on a replica group (several devices
each holding the stage, requests shared by speed: core0+core1). Prints the stages, transfers and totals, and
the baselines (best single device, Neurosurgeon, DADS, equal layers, memory- and compute-proportional, data
parallelism over all devices) beside it.
Devices emulated on this machine (cpus:) without a profile are profiled here once per model and cached.
  --cluster         a cluster file or a shipped cluster's name (default local: this machine's cores)
  --objective       latency (one inference end to end), throughput (pipelined), or energy per inference
  --max-latency     end-to-end limit (a number is ms; or "20ms", "1s")
  --min-fps         pipelined inferences per second at least
  --max-energy      J per inference (a number is J; or "20mJ")
  --max-link-bytes  bytes any link may carry per inference (a number is bytes; or "4MB", "1MiB")
  --devices         devices that may run stages (others only hold input/output)
  --device-order    stages must use devices in this order
  --pareto          also the Pareto front over latency, throughput and energy
  --no-local        do not split stages over a device's core clusters
  --no-replicas     one device per stage (a pipeline): no replica groups
  --tiles K         split a run of spatial layers into K row tiles run side by side (forced; latency)
  --no-tiles        no spatial tiles: only independent branches may run on several devices at once
  --no-parallel     no tiles or parallel stages: stages run one after another (the latency objective
                    otherwise also searches plans whose tiles run on several devices at once)
  --min-gain        least predicted latency gain for tiles or branches to be used over the plan without
                    them (default ${PARALLEL_MIN_GAIN * 100}%: each stage they add costs what the prices miss; "2%" or 0.02)
  --time-limit      stop proving optimality after this many ms (the best plan found is kept, marked)
  -o                write the plan (for 'cleave split/run --plan') to this file
  --json            the plan as one JSON object
${FIDELITY_USAGE}
Exits 1 with an explanation (which limit binds, by how much, what would fit) when nothing fits.

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave plan`. */
export const planCommand: Command = {
  name: "plan",
  summary: "choose the best split of a model over a cluster, with baselines and a Pareto front",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("plan", argv, {
      cluster: { type: "string" },
      objective: { type: "string" },
      "max-latency": { type: "string" },
      "min-fps": { type: "string" },
      "max-energy": { type: "string" },
      "max-link-bytes": { type: "string" },
      devices: { type: "string" },
      "device-order": { type: "string" },
      pareto: { type: "boolean" },
      "no-local": { type: "boolean" },
      "no-replicas": { type: "boolean" },
      tiles: { type: "string" },
      "no-tiles": { type: "boolean" },
      "no-parallel": { type: "boolean" },
      "min-gain": { type: "string" },
      "time-limit": { type: "string" },
      profile: { type: "string", multiple: true },
      json: { type: "boolean" },
      output: { type: "string", short: "o" },
      ...MODEL_INPUT_FLAGS,
      ...FIDELITY_FLAGS,
    });
    const fidelity = fidelityFromFlags(values);
    const path = onePositional("plan", positionals, "model file");
    const output = str(values, "output");
    if (output !== undefined) checkOutputFile(output);
    const clusterPath = str(values, "cluster") ?? "local";
    const objective = (str(values, "objective") ?? "latency") as Objective;
    if (!OBJECTIVES.includes(objective)) {
      throw new ArgumentError(`--objective: expected one of ${OBJECTIVES.join(", ")}, got '${objective}'`, {
        field: "objective",
      });
    }
    const cluster = clusterFromFlags(clusterPath);
    const fromFile = cluster.constraints
      ? parseConstraints(cluster.constraints, cluster.source ?? clusterPath)
      : {};
    const constraints = mergeConstraints(fromFile, constraintFlags(values));
    const inputs = modelInputs(values);
    const { inputShapes } = inputs;
    const model = await loadForCli(path, inputs, io);
    const profiles: Record<string, Profile> = {};
    for (const spec of list(values, "profile") ?? []) {
      const m = /^([^=]+)=(.+)$/.exec(spec);
      if (!m)
        throw new ArgumentError(`--profile: expected device=profile.json, got '${spec}'`, {
          field: "profile",
        });
      profiles[m[1]] = loadProfile(m[2]);
    }
    const cost = costModelFor(model, cluster, {
      profiles: await withLocalProfiles(model, cluster, profiles, io, progress(io, values.json !== true)),
      inputShapes,
    });
    const limit = str(values, "time-limit");
    const timeLimitMs = limit === undefined ? undefined : Number(limit);
    if (timeLimitMs !== undefined && !(timeLimitMs > 0))
      throw new ArgumentError(`--time-limit: expected ms > 0, got '${limit}'`, { field: "time-limit" });
    const outcome = fidelity
      ? {
          plan: (
            await planUnderBudget(model, cluster, cost, fidelity, {
              objective,
              constraints,
              modelPath: path,
              replicas: !bool(values, "no-replicas"),
              pareto: bool(values, "pareto"),
            })
          ).plan.plan,
        }
      : makePlan({
          model,
          modelPath: path,
          ...inputs,
          cluster,
          cost,
          objective,
          constraints,
          pareto: bool(values, "pareto"),
          hierarchical: !bool(values, "no-local"),
          replicas: !bool(values, "no-replicas"),
          ...(timeLimitMs !== undefined ? { timeLimitMs } : {}),
        });
    const tiles = tilesFlag(values);
    const minGain = minGainFlag(values);
    if (minGain !== undefined && (tiles !== undefined || bool(values, "no-parallel")))
      throw new ArgumentError(
        `--min-gain and ${tiles !== undefined ? "--tiles (forced whatever the gain)" : "--no-parallel"} contradict each other: give one`,
        { field: "min-gain" },
      );
    if (tiles !== undefined && bool(values, "no-parallel"))
      throw new ArgumentError("--tiles and --no-parallel contradict each other: give one", {
        field: "tiles",
      });
    if (tiles !== undefined && bool(values, "no-tiles"))
      throw new ArgumentError("--tiles and --no-tiles contradict each other: give one", { field: "tiles" });
    if (tiles !== undefined && fidelity)
      throw new ArgumentError("--tiles with a fidelity budget is not planned yet: give one of them", {
        field: "tiles",
      });
    if (
      "order" in outcome &&
      (tiles !== undefined || (objective === "latency" && !bool(values, "no-parallel")))
    ) {
      const par = await parallelPlanFor(outcome.plan, model, outcome.order, outcome.problem, cluster, cost, {
        ...(tiles !== undefined ? { tiles } : {}),
        ...(bool(values, "no-tiles") ? { spatial: false } : {}),
        ...(minGain !== undefined ? { minGain } : {}),
        declined: (why) => {
          outcome.plan.planner.parallel = why;
        },
      });
      if (par) outcome.plan = par.plan;
    }
    if (output !== undefined) writePlan(output, outcome.plan);
    if (bool(values, "json")) {
      io.out(
        JSON.stringify(outcome.plan, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v)),
      );
      return 0;
    }
    io.out(renderPlan(outcome.plan, style(io.isTTY)));
    for (const line of renderEncodings(outcome.plan)) io.out(line);
    if (output !== undefined) io.out(style(io.isTTY).dim(`plan written to ${output}`));
    return 0;
  },
};

/** `--tiles K`: an integer >= 2, or undefined. */
export function tilesFlag(values: Record<string, unknown>): number | undefined {
  const v = values.tiles;
  if (typeof v !== "string") return undefined;
  const k = Number(v);
  if (!Number.isInteger(k) || k < 2)
    throw new ArgumentError(`--tiles: expected a whole number of tiles >= 2, got '${v}'`, { field: "tiles" });
  return k;
}

/** `--min-gain`: a fraction in [0, 1) given as "5%" or 0.05. */
export function minGainFlag(values: Record<string, unknown>): number | undefined {
  const v = values["min-gain"];
  if (typeof v !== "string") return undefined;
  const pct = /^\s*([0-9.]+)\s*%\s*$/.exec(v);
  const g = pct ? Number(pct[1]) / 100 : plain(v) ? Number(v) : Number.NaN;
  if (!(g >= 0 && g < 1))
    throw new ArgumentError(`--min-gain: expected a gain from 0 to under 1 ("5%" or 0.05), got '${v}'`, {
      field: "min-gain",
    });
  return g;
}

/** True when a flag's value is a bare number (ms for --max-latency, bytes for --max-link-bytes). */
const plain = (v: string) => /^\s*[0-9.eE+-]+\s*$/.test(v);

/** Constraints given as flags. */
function constraintFlags(values: Record<string, unknown>): PlanConstraints {
  const c: PlanConstraints = {};
  const s = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const lat = s("max-latency");
  if (lat !== undefined) {
    const v = plain(lat) ? Number(lat) / 1e3 : TIME.parse(lat);
    if (v === undefined || !(v > 0) || !Number.isFinite(v))
      throw new ArgumentError(
        `--max-latency: expected ms or a time like "20ms", got '${lat}'${plain(lat) ? "" : unitProblem(TIME, lat)}`,
        {
          field: "max-latency",
        },
      );
    c.maxLatency = v;
  }
  const fps = s("min-fps");
  if (fps !== undefined) {
    const v = Number(fps);
    if (!(v > 0))
      throw new ArgumentError(`--min-fps: expected a number > 0, got '${fps}'`, { field: "min-fps" });
    c.minThroughput = v;
  }
  const en = s("max-energy");
  if (en !== undefined) {
    const v = parseEnergy(en);
    if (v === undefined || !(v > 0) || !Number.isFinite(v))
      throw new ArgumentError(`--max-energy: expected J or an energy like "20mJ", got '${en}'`, {
        field: "max-energy",
      });
    c.maxEnergy = v;
  }
  const lb = s("max-link-bytes");
  if (lb !== undefined) {
    const v = plain(lb) ? Number(lb) : BYTES.parse(lb);
    if (v === undefined || !(v > 0) || !Number.isFinite(v))
      throw new ArgumentError(
        `--max-link-bytes: expected bytes like "4MB", got '${lb}'${plain(lb) ? "" : unitProblem(BYTES, lb)}`,
        {
          field: "max-link-bytes",
        },
      );
    c.maxLinkBytes = v;
  }
  const names = (k: string) =>
    s(k)
      ?.split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "");
  const devices = names("devices");
  if (devices) c.devices = devices;
  const order = names("device-order");
  if (order) c.deviceOrder = order;
  return c;
}

const mj = (j: number | null) =>
  j === null ? "inf" : j < 1 ? `${(j * 1e3).toPrecision(3)} mJ` : `${j.toPrecision(3)} J`;
const fps = (r: number) => `${r.toPrecision(3)}/s`;

/** The plan as aligned tables: stages, transfers, totals, baselines, Pareto front. */
export function renderPlan(plan: Plan, st: Style): string {
  const out: string[] = [];
  const how = plan.planner.exact
    ? "optimal"
    : plan.tiles
      ? plan.tiles.stacks.length > 0
        ? "tiles side by side"
        : "branches side by side"
      : `best found, within ${(100 * ((plan.planner.lowerBound ?? 0) > 0 ? 1 - (plan.planner.lowerBound ?? 0) / objectiveOf(plan) : 1)).toFixed(1)}% of the bound`;
  out.push(
    `${st.bold(plan.model)} on ${st.bold(plan.clusterName)}: ${plan.objective} (${how}, ${plan.planner.ms.toFixed(0)} ms, ${plan.order} order)`,
  );
  const limits = Object.entries(plan.constraints).map(
    ([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`,
  );
  if (limits.length > 0) out.push(st.dim(`constraints: ${limits.join(" ")}`));
  if (plan.planner.limited) out.push(st.dim(`search limited: ${plan.planner.limited}`));
  if (plan.planner.parallel) out.push(st.dim(`one stage at a time: ${plan.planner.parallel}`));
  for (const t of plan.tiles?.stacks ?? [])
    out.push(
      `tiles: ${t.from} -> ${t.to} in ${t.tiles} row tiles${t.weights ? ` (sizes ${t.weights.map((w) => (w / t.weights!.reduce((a, b) => a + b, 0)).toFixed(2)).join(" : ")})` : ""}${t.fromTiles ? ", reading the tiles before it (halo rows only, no join)" : ""}`,
    );
  if (plan.tiles) {
    const macs = plan.stages.length > 0 ? plan.tiles.haloMacs : 0;
    out.push(
      st.dim(
        `halo recompute ${(macs / 1e6).toFixed(1)} M MACs; timeline per request: ${plan.tiles.timeline.map((t, k) => `${k}@${plan.stages[k].device} ${fmtTime(t.start)}-${fmtTime(t.finish)}`).join(", ")}`,
      ),
    );
  }
  out.push(
    table(
      [
        ["stage", "device", "nodes", "cut in", "latency", "memory", "energy"],
        ...plan.stages.flatMap((s) => {
          const cut =
            s.inputs.length === 0 ? "-" : s.inputs.length === 1 ? s.inputs[0] : `${s.inputs.length} tensors`;
          const row = [
            String(s.index),
            fmtGroup(
              stageDevices(s),
              s.replicas?.map((r) => r.share),
            ),
            String(s.nodes.length),
            cut.length > 32 ? `${cut.slice(0, 29)}...` : cut,
            fmtTime(s.latency) + (s.period !== undefined ? ` (every ${fmtTime(s.period)})` : ""),
            fmtBytes(s.memory),
            mj(s.energy),
          ];
          const local = (s.local ?? []).map((l) => [
            "",
            st.dim(`  ${l.coreCluster}`),
            String(l.nodes),
            "",
            fmtTime(l.latency),
            "",
            "",
          ]);
          const replicas = (s.replicas ?? []).map((r) => [
            "",
            st.dim(`  ${r.device} ${(100 * r.share).toFixed(0)}%`),
            "",
            "",
            fmtTime(r.latency) + (r.period !== r.latency ? ` (every ${fmtTime(r.period)})` : ""),
            fmtBytes(r.memory),
            mj(r.energy),
          ]);
          // The input device's time feeding the stage (encode and send of the graph inputs), when priced.
          const feed =
            s.inputFeed !== undefined
              ? [
                  [
                    "",
                    st.dim(`  fed by ${plan.links.find((l) => l.fromStage < 0)?.from ?? "the input device"}`),
                    "",
                    "",
                    `${fmtTime(s.inputFeed)} a request`,
                    "",
                    "",
                  ],
                ]
              : [];
          return [row, ...replicas, ...feed, ...local];
        }),
      ],
      st,
    ),
  );
  if (plan.links.length > 0) {
    out.push("");
    out.push(
      table(
        [
          ["from", "to", "link", "bytes", "time", "energy"],
          ...plan.links.map((l) => [
            l.fromStage < 0 ? `${l.from} (input)` : `${l.from} (${l.fromStage})`,
            l.toStage >= plan.stages.length ? `${l.to} (output)` : `${l.to} (${l.toStage})`,
            l.share !== undefined ? `${l.link} (${(100 * l.share).toFixed(0)}% of requests)` : l.link,
            fmtBytes(l.bytes),
            fmtTime(l.time),
            mj(l.energy),
          ]),
        ],
        st,
      ),
    );
  }
  out.push("");
  out.push(
    `latency ${st.bold(fmtTime(plan.totals.latency))}, throughput ${st.bold(fps(plan.totals.throughput))}, energy ${st.bold(mj(plan.totals.energy))} per inference`,
  );
  if (plan.baselines.length > 0) {
    out.push("");
    out.push(
      table(
        [
          ["baseline", "devices", "latency", "throughput", "energy", `vs plan (${plan.objective})`],
          ...plan.baselines.map((b) => [
            b.name,
            b.stages.map((s) => `${fmtGroup(s.replicas ?? [s.device])}:${s.nodes}`).join(" "),
            b.totals.latency === null ? "inf" : fmtTime(b.totals.latency),
            fps(b.totals.throughput),
            mj(b.totals.energy),
            b.feasible
              ? b.ratio === null
                ? "-"
                : ratioText(b.ratio, st)
              : st.red(`infeasible: ${b.reason ?? ""}`.slice(0, 60)),
          ]),
        ],
        st,
      ),
    );
  }
  if (plan.pareto) {
    out.push("");
    out.push(st.bold(`Pareto front (${plan.paretoMethod}, ${plan.pareto.length} points)`));
    out.push(
      table(
        [
          ["latency", "throughput", "energy", "stages", ""],
          ...plan.pareto.map((x) => [
            fmtTime(x.latency),
            fps(x.throughput),
            mj(x.energy),
            x.stages.map((s) => `${s.device}[${s.start},${s.end})`).join(" "),
            x.label ?? "",
          ]),
        ],
        st,
      ),
    );
  }
  return out.join("\n");
}

function objectiveOf(plan: Plan): number {
  return plan.objective === "latency"
    ? plan.totals.latency
    : plan.objective === "throughput"
      ? 1 / plan.totals.throughput
      : plan.totals.energy;
}

function ratioText(r: number, st: Style): string {
  const s = `${r.toFixed(2)}x`;
  return r > 1.0005 ? st.green(s) : r < 0.9995 ? st.red(s) : s;
}
