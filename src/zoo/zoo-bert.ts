import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

const VOCAB = 30522;
const MAX_POSITIONS = 512;
const SEQ = 128;
const HIDDEN = 256;
const HEADS = 4;
const LAYERS = 4;
const FFN = 4 * HIDDEN;
const LN_EPS = 1e-12;

/** MACs of one encoder layer at SEQ tokens: Q, K, V, output projections, scores, context, FFN. */
const LAYER_MACS = 4 * SEQ * HIDDEN * HIDDEN + 2 * SEQ * SEQ * HIDDEN + 2 * SEQ * HIDDEN * FFN;

/** BERT self-attention as Hugging Face exports it: separate Q/K/V, additive mask, Softmax, output dense. */
function attention(n: Net, x: string, mask: string, p: string): string {
  const B = n.batch;
  const hd = HIDDEN / HEADS;
  const heads = (t: string, name: string, perm: number[]) =>
    n.transpose(n.reshape(t, [B, SEQ, HEADS, hd], `${name}.view`), perm, `${name}.permute`);
  const q = heads(n.matmulLinear(x, `${p}.self.query`, HIDDEN, HIDDEN), `${p}.self.query`, [0, 2, 1, 3]);
  const k = heads(n.matmulLinear(x, `${p}.self.key`, HIDDEN, HIDDEN), `${p}.self.key`, [0, 2, 3, 1]);
  const v = heads(n.matmulLinear(x, `${p}.self.value`, HIDDEN, HIDDEN), `${p}.self.value`, [0, 2, 1, 3]);
  let s = n.g.node("MatMul", [q, k], {}, `${p}.self.scores`);
  s = n.g.node("Div", [s, n.scalar(Math.sqrt(hd))], {}, `${p}.self.scale`);
  s = n.add(s, mask, `${p}.self.mask`);
  s = n.g.node("Softmax", [s], { axis: -1 }, `${p}.self.softmax`);
  let o = n.g.node("MatMul", [s, v], {}, `${p}.self.context`);
  o = n.transpose(o, [0, 2, 1, 3], `${p}.self.context.permute`);
  o = n.reshape(o, [B, SEQ, HIDDEN], `${p}.self.context.view`);
  o = n.matmulLinear(o, `${p}.output.dense`, HIDDEN, HIDDEN);
  return n.layerNorm(n.add(o, x, `${p}.output.add`), `${p}.output.LayerNorm`, HIDDEN, LN_EPS);
}

/**
 * A BERT-style encoder in the configuration of BERT-mini (4 layers, hidden 256, 4 heads, FFN 1024, vocabulary
 * 30522; Turc et al. 2019) at sequence length 128, built as Hugging Face's BertModel exports it: int64
 * `input_ids` and `attention_mask` [batch, 128]; word embeddings by Gather, position ids from the input's
 * shape (Shape, Gather, Range) into a Gather of the 512-row position table, LayerNorm; the mask turned into an
 * additive bias ((1 - Cast(mask)) * -10000, Unsqueeze to [batch, 1, 1, 128]); post-norm encoder layers with
 * exact (Erf) GELU; outputs `last_hidden_state` and the pooler's Tanh of the first token's dense projection.
 * Single-segment input: no token-type embedding.
 */
export const bert_mini: ZooEntry = {
  info: {
    name: "bert_mini",
    description: "BERT-mini encoder (4 layers, hidden 256, 4 heads, seq 128, int64 ids + mask)",
    inputShape: [1, SEQ],
    outputShape: [1, SEQ, HIDDEN],
    inputs: [
      { name: "input_ids", dtype: "int64", shape: [1, SEQ], range: [0, VOCAB] },
      { name: "attention_mask", dtype: "int64", shape: [1, SEQ], range: [0, 2] },
    ],
    outputs: [
      { name: "last_hidden_state", dtype: "float32", shape: [1, SEQ, HIDDEN] },
      { name: "pooler_output", dtype: "float32", shape: [1, HIDDEN] },
    ],
    // BERT-mini's 11,170,560 less the 2 x 256 token-type table.
    params:
      (VOCAB + MAX_POSITIONS) * HIDDEN +
      2 * HIDDEN +
      LAYERS * (4 * (HIDDEN * HIDDEN + HIDDEN) + 2 * HIDDEN * FFN + FFN + HIDDEN + 4 * HIDDEN) +
      HIDDEN * HIDDEN +
      HIDDEN,
    gmacs: Number(((LAYERS * LAYER_MACS + HIDDEN * HIDDEN) / 1e9).toFixed(4)),
    reference:
      "google/bert_uncased_L-4_H-256_A-4 (11.17M params) without token types; MACs counted per matmul at seq 128",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("bert_mini", opts);
    const B = n.batch;
    const ids = n.g.input("input_ids", "int64", [B, SEQ]);
    const maskIn = n.g.input("attention_mask", "int64", [B, SEQ]);
    const table = (name: string, rows: number) => n.g.weight(name, [rows, HIDDEN], { uniform: [-0.1, 0.1] });
    const words = n.g.node(
      "Gather",
      [table("embeddings.word_embeddings.weight", VOCAB), ids],
      {},
      "embeddings.word",
    );
    const shape = n.g.node("Shape", [ids], {}, "embeddings.shape");
    const len = n.g.node("Gather", [shape, n.int64s([1], [])], { axis: 0 }, "embeddings.seq_len");
    const positions = n.g.node(
      "Range",
      [n.int64s([0], []), len, n.int64s([1], [])],
      {},
      "embeddings.position_ids",
    );
    const pos = n.g.node(
      "Gather",
      [table("embeddings.position_embeddings.weight", MAX_POSITIONS), positions],
      {},
      "embeddings.position",
    );
    let x = n.add(words, pos, "embeddings.add");
    x = n.layerNorm(x, "embeddings.LayerNorm", HIDDEN, LN_EPS);
    let mask = n.g.node("Cast", [maskIn], { to: 1 }, "extended_mask.cast");
    mask = n.g.node("Sub", [n.scalar(1), mask], {}, "extended_mask.invert");
    mask = n.g.node("Mul", [mask, n.scalar(-10000)], {}, "extended_mask.bias");
    mask = n.g.node("Unsqueeze", [mask, n.int64s([1, 2])], {}, "extended_mask");
    for (let i = 0; i < LAYERS; i++) {
      const p = `encoder.layer.${i}`;
      x = attention(n, x, mask, `${p}.attention`);
      let f = n.gelu(n.matmulLinear(x, `${p}.intermediate.dense`, HIDDEN, FFN), `${p}.intermediate.gelu`);
      f = n.matmulLinear(f, `${p}.output.dense`, FFN, HIDDEN);
      x = n.layerNorm(n.add(f, x, `${p}.output.add`), `${p}.output.LayerNorm`, HIDDEN, LN_EPS);
    }
    const hidden = n.g.node("Identity", [x], {}, "last_hidden_state");
    const first = n.g.node("Gather", [hidden, n.int64s([0], [])], { axis: 1 }, "pooler.first_token");
    const pooled = n.g.node("Tanh", [n.linear(first, "pooler.dense", HIDDEN, HIDDEN)], {}, "pooler_output");
    return n.finishOutputs([
      { name: hidden, shape: [B, SEQ, HIDDEN] },
      { name: pooled, shape: [B, HIDDEN] },
    ]);
  },
};
