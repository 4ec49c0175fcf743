import { ArgumentError } from "../errors.js";
import { type SplitSpec, splitModel } from "../export/split.js";
import { type Command, intFlag, list, onePositional, parseFlags, parseInputShapes, str } from "./command.js";
import { fmtBytes, fmtCount, style, table } from "./format.js";
import { loadForCli } from "./load.js";

const USAGE = `usage: cleave split <model.onnx | zoo:NAME> (--cuts a,b | --stages k) -o outdir/ [--input-shape ...]

Writes one ONNX model per stage and manifest.json into outdir/.
  --cuts    cut indices from 'cleave cuts', or tensor names (everything needed for a tensor runs before its cut)
  --stages  k stages of about equal MACs
  -o        output folder (stage files of an earlier split there are replaced)`;

/** `cleave split`. */
export const splitCommand: Command = {
  name: "split",
  summary: "write the stage models of a split and its manifest.json",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("split", argv, {
      cuts: { type: "string", multiple: true },
      stages: { type: "string" },
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      "input-shape": { type: "string", multiple: true },
    });
    const path = onePositional("split", positionals, "model file");
    const out = str(values, "output");
    if (!out) throw new ArgumentError("cleave split: give the output folder with -o outdir/", { field: "o" });
    const cuts = list(values, "cuts")?.flatMap((c) => c.split(","));
    const stages = str(values, "stages");
    if ((cuts === undefined) === (stages === undefined)) {
      throw new ArgumentError("cleave split: give exactly one of --cuts or --stages", { field: "cuts" });
    }
    const model = await loadForCli(path, parseInputShapes(list(values, "input-shape")));
    const spec: SplitSpec = cuts ? { cuts } : { stages: intFlag("stages", stages, 2) };
    const { manifest } = splitModel(model, spec, out, { modelPath: path });
    if (values.json === true) {
      io.out(JSON.stringify(manifest));
      return 0;
    }
    io.out(
      table(
        [
          ["stage", "file", "nodes", "MACs", "params", "in", "out", "inputs"],
          ...manifest.stages.map((s) => [
            String(s.index),
            s.file,
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
    io.out(`wrote ${manifest.stages.length} stages and manifest.json to ${out}`);
    return 0;
  },
};
