import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

const PATCH = 16;
const SIZE = 224;
const DIM = 192;
const HEADS = 3;
const DEPTH = 12;
const MLP = 4 * DIM;
const GRID = SIZE / PATCH;
/** Patch tokens plus the class token. */
const TOKENS = GRID * GRID + 1;

/** Multi-head self-attention on [batch, TOKENS, DIM] with one fused QKV projection. */
function attention(n: Net, x: string, p: string): string {
  const B = n.batch;
  const hd = DIM / HEADS;
  let qkv = n.matmulLinear(x, `${p}.attn.qkv`, DIM, 3 * DIM);
  qkv = n.reshape(qkv, [B, TOKENS, 3, HEADS, hd], `${p}.attn.qkv.reshape`);
  qkv = n.transpose(qkv, [2, 0, 3, 1, 4], `${p}.attn.qkv.permute`);
  const [q3, k3, v3] = n.g.nodeN("Split", [qkv], { axis: 0 }, 3, `${p}.attn.split`);
  const axes0 = n.int64s([0]);
  const q = n.g.node("Squeeze", [q3, axes0], {}, `${p}.attn.q`);
  const k = n.g.node("Squeeze", [k3, axes0], {}, `${p}.attn.k`);
  const v = n.g.node("Squeeze", [v3, axes0], {}, `${p}.attn.v`);
  const kt = n.transpose(k, [0, 1, 3, 2], `${p}.attn.k.transpose`);
  let s = n.g.node("MatMul", [q, kt], {}, `${p}.attn.scores`);
  s = n.g.node("Mul", [s, n.scalar(1 / Math.sqrt(hd))], {}, `${p}.attn.scale`);
  s = n.g.node("Softmax", [s], { axis: -1 }, `${p}.attn.softmax`);
  let o = n.g.node("MatMul", [s, v], {}, `${p}.attn.context`);
  o = n.transpose(o, [0, 2, 1, 3], `${p}.attn.context.permute`);
  o = n.reshape(o, [B, TOKENS, DIM], `${p}.attn.context.reshape`);
  return n.matmulLinear(o, `${p}.attn.proj`, DIM, DIM);
}

/**
 * ViT-Ti/16 (Dosovitskiy et al. 2021; timm vit_tiny_patch16_224) at 224x224: 16x16 stride-16 patch-embedding
 * conv, class token Concat, learned position embedding Add, 12 pre-norm blocks (LayerNormalization, fused
 * QKV MatMul, 3 heads of 64 via Reshape/Transpose, Softmax attention, projection, MLP 768 with exact
 * Erf-based GELU), final LayerNormalization, the class token's features to a Gemm head.
 */
export const vit_tiny: ZooEntry = {
  info: {
    name: "vit_tiny",
    description: "ViT-Ti/16 (dim 192, 12 blocks, 3 heads, 224x224)",
    inputShape: [1, 3, SIZE, SIZE],
    outputShape: [1, 1000],
    params: 5_717_416,
    gmacs: 1.26,
    reference: "timm vit_tiny_patch16_224 (5.7M params, 1.3 GMACs)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("vit_tiny", opts);
    const B = n.batch;
    let x = n.input([3, SIZE, SIZE]);
    x = n.conv(x, "patch_embed.proj", { cin: 3, cout: DIM, k: PATCH, stride: PATCH, pad: 0 });
    x = n.reshape(x, [B, DIM, GRID * GRID], "patch_embed.flatten");
    x = n.transpose(x, [0, 2, 1], "patch_embed.transpose");
    let cls = n.g.weight("cls_token", [1, 1, DIM], { uniform: [-0.02, 0.02] });
    if (B !== 1) cls = n.g.node("Expand", [cls, n.int64s([B, 1, DIM])], {}, "cls_token.expand");
    x = n.concat([cls, x], "cat_cls", 1);
    const pos = n.g.weight("pos_embed", [1, TOKENS, DIM], { uniform: [-0.02, 0.02] });
    x = n.add(x, pos, "pos_embed.add");
    for (let i = 0; i < DEPTH; i++) {
      const p = `blocks.${i}`;
      const a = attention(n, n.layerNorm(x, `${p}.norm1`, DIM), p);
      x = n.add(x, a, `${p}.add1`);
      let m = n.layerNorm(x, `${p}.norm2`, DIM);
      m = n.gelu(n.matmulLinear(m, `${p}.mlp.fc1`, DIM, MLP), `${p}.mlp.gelu`);
      m = n.matmulLinear(m, `${p}.mlp.fc2`, MLP, DIM);
      x = n.add(x, m, `${p}.add2`);
    }
    x = n.layerNorm(x, "norm", DIM);
    x = n.g.node("Gather", [x, n.int64s([0], [])], { axis: 1 }, "cls_select");
    n.linear(x, "head", DIM, 1000);
    return n.finish([1000]);
  },
};
