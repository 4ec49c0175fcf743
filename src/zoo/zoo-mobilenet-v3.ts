import { type Activation, Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** torchvision's inverted residual table: [in, kernel, expanded, out, squeeze-excite, hard-swish, stride]. */
const SMALL: ReadonlyArray<[number, number, number, number, boolean, boolean, number]> = [
  [16, 3, 16, 16, true, false, 2],
  [16, 3, 72, 24, false, false, 2],
  [24, 3, 88, 24, false, false, 1],
  [24, 5, 96, 40, true, true, 2],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 120, 48, true, true, 1],
  [48, 5, 144, 48, true, true, 1],
  [48, 5, 288, 96, true, true, 2],
  [96, 5, 576, 96, true, true, 1],
  [96, 5, 576, 96, true, true, 1],
];

const BN = { eps: 1e-3 };
/** Gamma of the projection BN of residual blocks: keeps the residual sum bounded. */
const RESIDUAL_GAMMA = 0.5;

/** torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8, never more than 10% below `v`. */
function divisible8(v: number): number {
  const r = Math.max(8, Math.floor((v + 4) / 8) * 8);
  return r < 0.9 * v ? r + 8 : r;
}

/**
 * MobileNetV3 features as torchvision builds them (`features.0` .. `features.12`). Returns the output of each
 * feature layer, so a detector can tap several scales.
 */
export function mobilenetV3SmallFeatures(n: Net, input: string): string[] {
  const taps: string[] = [];
  let x = n.convBnAct(input, "features.0", { cin: 3, cout: 16, k: 3, stride: 2 }, "hardswish", BN);
  taps.push(x);
  SMALL.forEach(([cin, k, exp, cout, se, hs, stride], i) => {
    const p = `features.${i + 1}.block`;
    const act: Activation = hs ? "hardswish" : "relu";
    const residual = stride === 1 && cin === cout;
    let y = x;
    let j = 0;
    if (exp !== cin) y = n.convBnAct(y, `${p}.${j++}`, { cin, cout: exp, k: 1 }, act, BN);
    y = n.convBnAct(y, `${p}.${j++}`, { cin: exp, cout: exp, k, stride, groups: exp }, act, BN);
    if (se) y = n.squeezeExcite(y, `${p}.${j++}`, exp, divisible8(exp / 4), "relu", "hardsigmoid");
    const gamma = residual ? RESIDUAL_GAMMA : 1;
    y = n.convBnAct(y, `${p}.${j}`, { cin: exp, cout, k: 1 }, "none", { ...BN, gamma });
    x = residual ? n.add(y, x, `features.${i + 1}.add`) : y;
    taps.push(x);
  });
  taps.push(n.convBnAct(x, "features.12", { cin: 96, cout: 576, k: 1 }, "hardswish", BN));
  return taps;
}

/**
 * torchvision MobileNetV3-Small at inference: hard-swish (HardSwish) and ReLU blocks, squeeze-and-excitation
 * with a HardSigmoid gate, BN eps 1e-3, 1x1 conv to 576, pool, FC 1024 + hard-swish, FC 1000 (dropout is an
 * identity at inference).
 */
export const mobilenet_v3_small: ZooEntry = {
  info: {
    name: "mobilenet_v3_small",
    description: "MobileNetV3-Small (hard-swish, SE with hard sigmoid, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 2_542_856,
    // torchvision rounds it to 0.06 GFLOPS; the paper's table gives 56M multiply-adds.
    gmacs: 0.056,
    reference: "torchvision.models.mobilenet_v3_small (IMAGENET1K_V1); MACs: Howard et al. 2019, Table 3",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("mobilenet_v3_small", opts);
    const taps = mobilenetV3SmallFeatures(n, n.input([3, 224, 224]));
    let x = n.globalPoolFlatten(taps[taps.length - 1]);
    x = n.act(n.linear(x, "classifier.0", 576, 1024), "hardswish", "classifier.0");
    n.linear(x, "classifier.3", 1024, 1000);
    return n.finish([1000]);
  },
};
