import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema } from "onnx-buf";
import { ModelError } from "../src/errors.js";
import { Graph } from "../src/ir/graph.js";
import { GraphBuilder } from "../src/onnx/builder.js";

function chain() {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [1, 4]);
  const a = b.node("Relu", [x], {}, "a");
  const c = b.node("Sigmoid", [a], {}, "c");
  const d = b.node("Add", [a, c], {}, "d");
  b.output(d);
  return b;
}

test("nodes are sorted topologically, keeping the file order where valid", () => {
  const b = chain();
  b.nodes.reverse(); // exporters may write nodes out of order
  const g = new Graph(b.toModel());
  assert.deepEqual(
    g.nodes.map((n) => n.name),
    ["a", "c", "d"],
  );
  assert.deepEqual(
    g.value(g.node("a").outputs[0]).consumers.map((n) => n.name),
    ["c", "d"],
  );
  assert.equal(g.value(g.node("d").outputs[0]).isOutput, true);
  assert.equal(g.value("x").kind, "input");
});

test("unnamed and duplicate node names become unique and stable", () => {
  const b = chain();
  b.nodes[0].name = "";
  b.nodes[1].name = "";
  b.nodes[2].name = "Relu_0"; // collides with the name an unnamed Relu would get
  const g1 = new Graph(b.toModel());
  const g2 = new Graph(b.toModel());
  const names = g1.nodes.map((n) => n.name);
  assert.equal(new Set(names).size, 3);
  assert.deepEqual(
    names,
    g2.nodes.map((n) => n.name),
  );
  assert.ok(names.every((n) => n !== ""));
});

test("invalid graphs are refused with the node or tensor at fault", () => {
  const cases: Array<[string, (b: GraphBuilder) => void, RegExp]> = [
    [
      "cycle",
      (b) => {
        b.nodes[0].input[0] = b.nodes[2].output[0];
      },
      /cycle through nodes .*'a'/,
    ],
    [
      "undefined read",
      (b) => {
        b.nodes[1].input[0] = "ghost";
      },
      /node 'c' \(Sigmoid\) reads tensor 'ghost', which no node, input or initializer defines/,
    ],
    [
      "two producers",
      (b) => {
        b.nodes[1].output[0] = b.nodes[0].output[0];
      },
      /tensor 'a' is produced by both node 'a' and node 'c'/,
    ],
    [
      "output not produced",
      (b) => {
        b.outputs[0].name = "nothing";
      },
      /graph output 'nothing' is not produced/,
    ],
    [
      "writes an input",
      (b) => {
        b.nodes.push(
          create(NodeProtoSchema, {
            name: "bad",
            opType: "Relu",
            input: [b.nodes[0].output[0]],
            output: ["x"],
          }),
        );
      },
      /node 'bad' writes tensor 'x', which is already a graph input/,
    ],
  ];
  for (const [label, mutate, re] of cases) {
    const b = chain();
    mutate(b);
    assert.throws(
      () => new Graph(b.toModel(), { source: "m.onnx" }),
      (e: unknown) =>
        e instanceof ModelError &&
        e.code === "INVALID_GRAPH" &&
        re.test(e.message) &&
        e.message.startsWith("m.onnx: "),
      label,
    );
  }
});

test("subgraph reads of outer tensors are implicit inputs and order the graph", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2]);
  const cond = b.input("cond", "bool", []);
  const r = b.node("Relu", [x], {}, "r");
  const thenB = new GraphBuilder("then");
  thenB.output(thenB.node("Relu", [r], {}, "inner"));
  const elseB = new GraphBuilder("else");
  elseB.output(elseB.node("Neg", [r], {}, "inner2"));
  const out = b.node("If", [cond], { then_branch: thenB.toGraph(), else_branch: elseB.toGraph() }, "if");
  b.output(out);
  b.nodes.reverse(); // the If comes first in the file; its captured read must still order it after r
  const g = new Graph(b.toModel());
  assert.deepEqual(
    g.nodes.map((n) => n.name),
    ["r", "if"],
  );
  assert.deepEqual(g.node("if").implicitInputs, [r]);
  assert.deepEqual(
    g.value(r).consumers.map((n) => n.name),
    ["if"],
  );
});

test("weights: initializers and Constant outputs", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2]);
  const w = b.weight("w", [2]);
  const c = b.node("Constant", [], { value_ints: [1, 2] }, "k");
  b.output(b.node("Add", [x, w], {}, "y"));
  const g = new Graph(b.toModel());
  assert.equal(g.isWeight(w), true);
  assert.equal(g.isWeight(c), true);
  assert.equal(g.isWeight(x), false);
  assert.deepEqual(g.constantTensor(c)?.int64Data, [1n, 2n]);
  assert.throws(() => g.node("nope"), /no node named 'nope'/);
});
