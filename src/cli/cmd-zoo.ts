import { ArgumentError } from "../errors.js";
import { checkOutputFile } from "../output-file.js";
import { saveModel } from "../onnx/model-io.js";
import { buildZooModel, zooInfo, zooNames } from "../zoo/index.js";
import { bool, type Command, intFlag, onePositional, parseFlags, str } from "./command.js";
import { fmtCount, style, table } from "./format.js";

const USAGE = `usage: cleave zoo <name> -o model.onnx [--seed n]
       cleave zoo --list [--json]

Builds a standard network with seeded pseudo-random weights (the same seed gives the same bytes).`;

/** `cleave zoo`. */
export const zooCommand: Command = {
  name: "zoo",
  summary: "build a standard network (resnet50, efficientnet_b0, vit_tiny, ...) as ONNX",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("zoo", argv, {
      list: { type: "boolean" },
      json: { type: "boolean" },
      output: { type: "string", short: "o" },
      seed: { type: "string" },
    });
    if (bool(values, "list")) {
      const infos = zooNames().map((n) => zooInfo(n));
      if (bool(values, "json")) {
        io.out(JSON.stringify(infos));
        return 0;
      }
      io.out(
        table(
          [
            ["name", "input", "params", "GMACs", "description"],
            ...infos.map((i) => [
              i.name,
              i.inputShape.join("x"),
              fmtCount(i.params),
              i.gmacs.toFixed(2),
              i.description,
            ]),
          ],
          style(io.isTTY),
        ),
      );
      return 0;
    }
    const name = onePositional("zoo", positionals, "model name (see cleave zoo --list)");
    const out = str(values, "output");
    if (!out) throw new ArgumentError("cleave zoo: give the output file with -o model.onnx", { field: "o" });
    checkOutputFile(out);
    const model = buildZooModel(name, { seed: intFlag("seed", str(values, "seed"), 1, 0) });
    saveModel(model, out);
    io.out(`wrote ${out} (${name})`);
    return 0;
  },
};
