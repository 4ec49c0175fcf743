import { enumerateCuts } from "../partition/cuts.js";
import { choosePartitionOrder } from "../partition/order.js";
import {
  bool,
  type Command,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
} from "./command.js";
import { fmtBytes, style, table } from "./format.js";
import { loadForCli } from "./load.js";

const USAGE = `usage: cleave cuts <model.onnx | zoo:NAME> [--clean] [--json] [model input flags]

Lists every cut point of the model's partition order: the tensors crossing it and their bytes.
A cut index is what 'cleave split --cuts' takes.
  --clean   only cuts crossed by a single tensor
  --json    one JSON object: {order, nodes, cuts: [{index, after, tensors, bytes, macsBefore}]}

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave cuts`. */
export const cutsCommand: Command = {
  name: "cuts",
  summary: "list the cut points of a model with the tensors and bytes crossing each",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("cuts", argv, {
      clean: { type: "boolean" },
      json: { type: "boolean" },
      ...MODEL_INPUT_FLAGS,
    });
    const path = onePositional("cuts", positionals, "model file");
    const model = await loadForCli(path, modelInputs(values), io);
    const order = choosePartitionOrder(model);
    let cuts = enumerateCuts(model, order);
    if (bool(values, "clean")) cuts = cuts.filter((c) => c.tensors.length === 1);
    if (bool(values, "json")) {
      io.out(JSON.stringify({ model: path, order: order.strategy, nodes: order.nodes.length, cuts }));
      return 0;
    }
    const total = model.totals.macs || 1;
    const st = style(io.isTTY);
    io.out(
      table(
        [
          ["cut", "after node", "MACs before", "tensors", "bytes", "crossing"],
          ...cuts.map((c) => {
            const names = c.tensors.join(", ");
            return [
              String(c.index),
              c.after,
              `${((100 * c.macsBefore) / total).toFixed(1)}%`,
              String(c.tensors.length),
              fmtBytes(c.bytes),
              names.length > 60 ? `${names.slice(0, 57)}...` : names,
            ];
          }),
        ],
        st,
      ),
    );
    io.out(st.dim(`${cuts.length} cuts over ${order.nodes.length} compute nodes (${order.strategy} order)`));
    return 0;
  },
};
