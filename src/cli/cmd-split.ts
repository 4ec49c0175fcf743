import { checkOutputFolder } from "../output-file.js";
import { ArgumentError } from "../errors.js";
import { type SplitSpec, splitModel } from "../export/split.js";
import { planToAssignment, readPlan, stageDevices } from "../partition/plan.js";
import { modelForPlan } from "../partition/plan-parallel.js";
import {
  type Command,
  intFlag,
  list,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  planInputs,
  str,
} from "./command.js";
import { fmtBytes, fmtCount, style, table } from "./format.js";
import { loadForCli } from "./load.js";
import type { TensorEncoding } from "../onnx/encoding.js";
import { clusterForPlan } from "./cluster-flag.js";

const USAGE = `usage: cleave split <model.onnx | zoo:NAME> (--cuts a,b | --stages k | --plan plan.json) -o outdir/ [model input flags]

Writes one ONNX model per stage and manifest.json into outdir/.
  --cuts    cut indices from 'cleave cuts', or tensor names (everything needed for a tensor runs before its cut)
  --stages  k stages of about equal MACs
  --plan    the stages of a plan from 'cleave plan'; each stage's device goes into the manifest
  -o        output folder (stage files of an earlier split there are replaced)

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave split`. */
export const splitCommand: Command = {
  name: "split",
  summary: "write the stage models of a split and its manifest.json",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("split", argv, {
      cuts: { type: "string", multiple: true },
      stages: { type: "string" },
      plan: { type: "string" },
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      ...MODEL_INPUT_FLAGS,
    });
    const path = onePositional("split", positionals, "model file");
    const out = str(values, "output");
    if (!out) throw new ArgumentError("cleave split: give the output folder with -o outdir/", { field: "o" });
    checkOutputFolder(out);
    const cuts = list(values, "cuts")?.flatMap((c) => c.split(","));
    const stages = str(values, "stages");
    const planPath = str(values, "plan");
    if ([cuts, stages, planPath].filter((x) => x !== undefined).length !== 1) {
      throw new ArgumentError("cleave split: give exactly one of --cuts, --stages or --plan", {
        field: "cuts",
      });
    }
    const plan = planPath === undefined ? undefined : readPlan(planPath);
    // A tiled plan's stages are of the model tiled as the plan records.
    const model = await modelForPlan(
      await loadForCli(path, modelInputs(values, plan ? planInputs(plan) : {}), io),
      plan ?? {},
    );
    const spec: SplitSpec = plan
      ? { assignment: planToAssignment(model, plan) }
      : cuts
        ? { cuts }
        : { stages: intFlag("stages", stages, 2) };
    const { manifest } = splitModel(model, spec, out, {
      modelPath: path,
      devices: plan?.stages.map(stageDevices),
      ...(plan?.encodings ? { encodings: plan.encodings.tensors as TensorEncoding[] } : {}),
      ...(plan?.encodings ? { inputDevice: clusterForPlan(undefined, plan, planPath).inputDevice } : {}),
    });
    if (values.json === true) {
      io.out(JSON.stringify(manifest));
      return 0;
    }
    io.out(
      table(
        [
          ["stage", "file", "device", "nodes", "MACs", "params", "in", "out", "inputs"],
          ...manifest.stages.map((s) => [
            String(s.index),
            s.data ? `${s.file} + ${s.data.file}` : s.file,
            s.devices ? s.devices.join("+") : (s.device ?? "-"),
            String(s.nodes),
            fmtCount(s.macs),
            fmtCount(s.params),
            fmtBytes(s.bytesIn),
            fmtBytes(s.bytesOut),
            s.inputs.join(", ").slice(0, 50),
          ]),
        ],
        style(io.isTTY),
      ),
    );
    for (const e of manifest.encodings ?? [])
      io.out(`${e.tensor} travels ${e.encoding} (${e.tensor}::... between stages)`);
    io.out(`wrote ${manifest.stages.length} stages and manifest.json to ${out}`);
    return 0;
  },
};
