import type { AnalyzedModel } from "../ir/analyze.js";
import { dtypeSize } from "../onnx/dtype.js";
import { numel } from "../onnx/tensor.js";
import {
  bool,
  type Command,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
} from "./command.js";
import { fmtBytes, fmtCount, fmtShape, style, table } from "./format.js";
import { loadForCli } from "./load.js";

const USAGE = `usage: cleave inspect <model.onnx | zoo:NAME> [model input flags] [--layers] [--json]

Reads a model, checks its graph, infers every tensor's shape and prices every layer.
  --layers       add the per-layer table
  --json         print one JSON object (always includes layers)

Model input flags:
${MODEL_INPUT_USAGE}`;

/** Summary of an analysed model as plain data (what `inspect --json` prints). */
export function inspectJson(m: AnalyzedModel) {
  const { graph, types, costs, totals } = m;
  const spec = (name: string) => {
    const t = types.get(name);
    return { name, shape: t?.shape ?? [], dtype: t?.dtype ?? "unknown" };
  };
  const operators: Record<string, number> = {};
  for (const n of graph.nodes) operators[n.op] = (operators[n.op] ?? 0) + 1;
  return {
    model: graph.source,
    irVersion: Number(graph.model.irVersion),
    opset: graph.opset,
    nodes: graph.nodes.length,
    params: totals.params,
    paramBytes: totals.paramBytes,
    macs: totals.macs,
    flops: totals.flops,
    /** Constant-subgraph nodes folded into weights, the bytes they became, and the Ifs inlined. */
    folded: { nodes: m.folding.folded, bytes: m.folding.foldedBytes, inlinedIfs: [...m.folding.inlined] },
    inputs: graph.inputs.map((v) => spec(v.name)),
    outputs: graph.outputs.map((v) => spec(v.name)),
    operators,
    layers: graph.nodes.map((n, i) => ({
      name: n.name,
      op: n.op,
      macs: costs[i].macs,
      flops: costs[i].flops,
      params: costs[i].params,
      outputs: n.outputs
        .filter((o) => o !== "")
        .map((o) => {
          const t = types.get(o);
          return { ...spec(o), bytes: t ? numel(t.shape) * dtypeSize(t.dtype) : 0 };
        }),
    })),
  };
}

/** `cleave inspect`. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "summarise a model: inputs, outputs, operators, parameters, MACs, largest activations",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("inspect", argv, {
      ...MODEL_INPUT_FLAGS,
      layers: { type: "boolean" },
      json: { type: "boolean" },
    });
    const path = onePositional("inspect", positionals, "model file");
    const m = await loadForCli(path, modelInputs(values), io);
    const j = inspectJson(m);
    if (bool(values, "json")) {
      io.out(JSON.stringify(j));
      return 0;
    }
    const st = style(io.isTTY);
    const lines: string[] = [];
    lines.push(`${st.bold(path)}  opset ${j.opset}, IR ${j.irVersion}, ${j.nodes} nodes`);
    lines.push("");
    lines.push(
      table(
        [
          ["", "name", "dtype", "shape"],
          ...j.inputs.map((t) => ["input", t.name, t.dtype, fmtShape(t.shape)]),
          ...j.outputs.map((t) => ["output", t.name, t.dtype, fmtShape(t.shape)]),
        ],
        st,
      ),
    );
    lines.push("");
    lines.push(
      `parameters ${st.cyan(fmtCount(j.params))} (${fmtBytes(j.paramBytes)})   MACs ${st.cyan(fmtCount(j.macs))}   FLOPs ${fmtCount(j.flops)}`,
    );
    if (j.folded.nodes > 0 || j.folded.inlinedIfs.length > 0)
      lines.push(
        `folded     ${j.folded.nodes} constant nodes into ${fmtBytes(j.folded.bytes)} of weights` +
          (j.folded.inlinedIfs.length > 0 ? `; inlined If ${j.folded.inlinedIfs.join(", ")}` : ""),
      );
    const ops = Object.entries(j.operators).sort((a, b) => b[1] - a[1]);
    lines.push(`operators  ${ops.map(([op, n]) => `${op} ${n}`).join(", ")}`);
    const acts = j.layers
      .flatMap((l) => l.outputs.map((o) => ({ layer: l.name, op: l.op, ...o })))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 5);
    lines.push("");
    lines.push(st.bold("largest activations"));
    lines.push(
      table(
        [
          ["tensor", "made by", "shape", "size"],
          ...acts.map((a) => [a.name, `${a.layer} (${a.op})`, fmtShape(a.shape), fmtBytes(a.bytes)]),
        ],
        st,
      ),
    );
    if (bool(values, "layers")) {
      lines.push("");
      lines.push(st.bold("layers"));
      lines.push(
        table(
          [
            ["#", "name", "op", "output", "MACs", "params"],
            ...j.layers.map((l, i) => [
              String(i),
              l.name,
              l.op,
              l.outputs.map((o) => fmtShape(o.shape)).join(", "),
              fmtCount(l.macs),
              fmtCount(l.params),
            ]),
          ],
          st,
        ),
      );
    }
    io.out(lines.join("\n"));
    return 0;
  },
};
