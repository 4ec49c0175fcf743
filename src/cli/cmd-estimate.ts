import type { Cluster } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import { estimateSplit } from "../cost/estimate.js";
import { loadProfile, type Profile } from "../cost/profile.js";
import { loadClusterSpec } from "./cluster-flag.js";
import { ArgumentError } from "../errors.js";
import { resolveSplit } from "../export/split.js";
import { choosePartitionOrder } from "../partition/order.js";
import { estimateReplicaSplit, type ReplicaEstimate } from "../partition/replica-estimate.js";
import {
  bool,
  type Command,
  intFlag,
  list,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  str,
} from "./command.js";
import { fmtBytes, fmtCount, fmtGroup, fmtTime, type Style, style, table } from "./format.js";
import { withLocalProfiles } from "./local-profiles.js";
import { progress } from "./progress.js";
import { loadForCli } from "./load.js";
import { estimatePlanFile } from "./estimate-parallel.js";

const USAGE = `usage: cleave estimate <model.onnx | zoo:NAME> --cluster c.yaml [--stages k | --cuts a,b,...]
       cleave estimate <model.onnx | zoo:NAME> --plan plan.json [--cluster c.yaml] [--json]
                       [--devices d1,d2+d3,...] [--profile device=profile.json ...]
                       [model input flags] [--json]

Predicts, for a split of the model over the cluster's devices, each stage's latency, peak memory and energy,
the transfers between devices, the end-to-end latency and the pipelined throughput.
  --stages k    k stages of about equal MACs (default: one per device)
  --cuts        cut indices (as 'cleave cuts' lists them) or tensor names
  --devices     device of each stage, in order (default: the input device first, then the others in file order);
                a+b runs the stage on a replica group (each holds the stage, requests shared by speed)
  --profile     a measured profile for a device (overrides the cluster file's profile:)
  --plan        price a saved plan (tiles and branches included) as a graph of stages for one request; its
                encoded cut tensors at their wire bytes and codec times, with the plan's measured fidelity
  --json        one JSON object instead of tables
Devices with a profile are priced from it (measured); devices emulated on this machine (cpus:) without one
are profiled here once per model and cached (see cleave bench --help); others from a profiled CPU scaled by
MAC rates, or by the roofline (analytic) calibrated from a profile when there is one.

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave estimate`. */
export const estimateCommand: Command = {
  name: "estimate",
  summary: "predict latency, memory, energy and throughput of a split on a cluster",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("estimate", argv, {
      cluster: { type: "string" },
      stages: { type: "string" },
      cuts: { type: "string" },
      devices: { type: "string" },
      profile: { type: "string", multiple: true },
      json: { type: "boolean" },
      plan: { type: "string" },
      ...MODEL_INPUT_FLAGS,
    });
    const path = onePositional("estimate", positionals, "model file");
    const planPath = str(values, "plan");
    if (planPath !== undefined) return estimatePlanFile(path, planPath, values, io);
    const clusterPath = str(values, "cluster");
    if (clusterPath === undefined)
      throw new ArgumentError("cleave estimate: missing --cluster c.yaml", { field: "cluster" });
    const cluster = loadClusterSpec(clusterPath);
    const inputs = modelInputs(values);
    const { inputShapes } = inputs;
    const model = await loadForCli(path, inputs, io);

    const cutsFlag = str(values, "cuts");
    const stagesFlag = str(values, "stages");
    if (cutsFlag !== undefined && stagesFlag !== undefined)
      throw new ArgumentError("cleave estimate: give --stages or --cuts, not both", { field: "cuts" });
    const deviceList = str(values, "devices")
      ?.split(",")
      .map((d) => d.trim())
      .filter((d) => d !== "");
    const groups = deviceList?.map((g) => g.split("+").map((d) => d.trim()));
    const k =
      stagesFlag !== undefined
        ? intFlag("stages", stagesFlag, 1)
        : (deviceList?.length ?? cluster.devices.length);
    const order = choosePartitionOrder(model);
    const assignment = resolveSplit(
      model,
      cutsFlag !== undefined ? { cuts: cutsFlag.split(",") } : { stages: k },
      order,
    );
    const devices = deviceList ?? defaultDevices(cluster, assignment.count);
    if (devices.length < assignment.count) {
      throw new ArgumentError(
        `--devices: stage ${devices.length} has no device (the split has ${assignment.count} stages; ${devices.length} given)`,
        { field: "devices" },
      );
    }
    if (devices.length !== assignment.count) {
      throw new ArgumentError(
        `--devices: the split has ${assignment.count} stages but ${devices.length} devices were given`,
        { field: "devices" },
      );
    }
    for (const d of groups ? groups.flat() : devices) {
      if (!cluster.devices.some((x) => x.name === d))
        throw new ArgumentError(
          `--devices: unknown device '${d}' (devices: ${cluster.devices.map((x) => x.name).join(", ")})`,
          { field: "devices", device: d },
        );
    }
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
    if (groups?.some((g) => g.length > 1)) {
      const est = estimateReplicaSplit(model, order, cluster, cost, assignment, groups);
      if (bool(values, "json")) io.out(JSON.stringify({ model: path, cluster: cluster.name, ...est }));
      else io.out(renderReplicaEstimate(est, style(io.isTTY)));
      return 0;
    }
    const est = estimateSplit(model, cluster, cost, assignment.stageOf, devices);
    const sources = Object.fromEntries(
      [...new Set(devices)].map((d) => [d, cost.describe(cluster.devices.find((x) => x.name === d)!)]),
    );

    if (bool(values, "json")) {
      io.out(
        JSON.stringify({
          model: path,
          cluster: cluster.name,
          stages: est.stages.map(({ nodes, ...s }) => ({ ...s, nodes: nodes.length, ...sources[s.device] })),
          transfers: est.transfers,
          endToEnd: est.endToEnd,
          throughput: est.throughput,
          bottleneck: est.bottleneck,
          energy: est.energy,
          overMemory: est.overMemory,
        }),
      );
      return 0;
    }
    const st = style(io.isTTY);
    io.out(
      table(
        [
          ["stage", "device", "nodes", "MACs", "latency", "memory", "energy", "priced by"],
          ...est.stages.map((s) => {
            const src = sources[s.device];
            const mem = `${fmtBytes(s.memory)} / ${fmtBytes(s.memoryLimit)}`;
            return [
              String(s.index),
              s.device,
              String(s.nodes.length),
              fmtCount(s.macs),
              fmtTime(s.latency),
              s.memory > s.memoryLimit ? st.red(`${mem} OVER`) : mem,
              `${(s.energy * 1e3).toPrecision(3)} mJ`,
              src.reference !== undefined ? `${src.source} (from ${src.reference})` : src.source,
            ];
          }),
        ],
        st,
      ),
    );
    if (est.transfers.length > 0) {
      io.out(
        table(
          [
            ["from", "to", "carries", "bytes", "time", "energy"],
            ...est.transfers.map((t) => [
              t.from,
              t.to,
              t.what,
              fmtBytes(t.bytes),
              fmtTime(t.time),
              `${(t.energy * 1e3).toPrecision(3)} mJ`,
            ]),
          ],
          st,
        ),
      );
    }
    io.out(
      `end-to-end ${st.bold(fmtTime(est.endToEnd))}, pipelined ${st.bold(`${est.throughput.toPrecision(3)} inf/s`)} ` +
        `(bottleneck: ${est.bottleneck}), ${(est.energy * 1e3).toPrecision(3)} mJ per inference`,
    );
    if (est.overMemory.length > 0)
      io.out(st.red(`stage(s) ${est.overMemory.join(", ")} need more memory than their device has`));
    return 0;
  },
};

/** The input device first, then the other devices in file order; the first `k`. */
function defaultDevices(cluster: Cluster, k: number): string[] {
  const names = [
    cluster.inputDevice,
    ...cluster.devices.map((d) => d.name).filter((n) => n !== cluster.inputDevice),
  ];
  if (k > names.length) {
    throw new ArgumentError(
      `the split has ${k} stages but the cluster has ${names.length} devices; give --devices (a device may run several stages)`,
      { field: "devices" },
    );
  }
  return names.slice(0, k);
}

/** A replicated split's estimate as tables: stages with one row per replica, transfers, totals. */
function renderReplicaEstimate(est: ReplicaEstimate, st: Style): string {
  const mj = (j: number) => `${(j * 1e3).toPrecision(3)} mJ`;
  const rows = est.stages.flatMap((s) => [
    [
      String(s.index),
      fmtGroup(
        s.devices,
        s.replicas.map((r) => r.share),
      ),
      String(s.nodes),
      `${fmtTime(s.latency)} (every ${fmtTime(s.period)})`,
      "",
      mj(s.energy),
    ],
    ...(s.replicas.length > 1
      ? s.replicas.map((r) => [
          "",
          st.dim(`  ${r.device}`),
          "",
          r.period !== r.latency ? `${fmtTime(r.latency)} (every ${fmtTime(r.period)})` : fmtTime(r.latency),
          `${fmtBytes(r.memory)} / ${fmtBytes(r.memoryLimit)}`,
          mj(r.energy),
        ])
      : [["", "", "", "", `${fmtBytes(s.replicas[0].memory)} / ${fmtBytes(s.replicas[0].memoryLimit)}`, ""]]),
  ]);
  const out = [table([["stage", "devices", "nodes", "latency", "memory", "energy"], ...rows], st)];
  if (est.transfers.length > 0) {
    out.push(
      table(
        [
          ["from", "to", "carries", "requests", "bytes", "time", "energy"],
          ...est.transfers.map((t) => [
            t.from,
            t.to,
            t.what,
            `${(100 * t.share).toFixed(0)}%`,
            fmtBytes(t.bytes),
            fmtTime(t.time),
            mj(t.energy),
          ]),
        ],
        st,
      ),
    );
  }
  out.push(
    `end-to-end ${st.bold(fmtTime(est.endToEnd))} (mean over requests), pipelined ${st.bold(`${est.throughput.toPrecision(3)} inf/s`)} ` +
      `(bottleneck: ${est.bottleneck}), ${mj(est.energy)} per inference`,
  );
  return out.join("\n");
}
