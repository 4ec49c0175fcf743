import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** MBConv stages of B0: [expand ratio, kernel, stride, in channels, out channels, repeats]. */
const B0: ReadonlyArray<[number, number, number, number, number, number]> = [
  [1, 3, 1, 32, 16, 1],
  [6, 3, 2, 16, 24, 2],
  [6, 5, 2, 24, 40, 2],
  [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3],
  [6, 5, 2, 112, 192, 4],
  [6, 3, 1, 192, 320, 1],
];

/**
 * BN gammas tuned for random weights (running stats are not real statistics): He init assumes ReLU's gain,
 * SiLU(x) ~ x/2 near 0 and the SE gate ~ 1/2, so with gamma 1 activations shrink ~3x per stage (to ~5e-4 at
 * the head). With these, the RMS stays within 0.5-5 through the network (measured; both directions compound).
 */
const BN = { eps: 1e-3, gamma: 1.2 };
/** Gamma of the projection BN of non-residual blocks (undoes part of the SE gate's 1/2). */
const PROJECT_GAMMA = 1.4;
/** Gamma of the projection BN of residual blocks: keeps the residual sum bounded. */
const RESIDUAL_GAMMA = 0.5;

/**
 * torchvision EfficientNet-B0 at inference: SiLU = x * Sigmoid(x), MBConv blocks with squeeze-and-excitation
 * (squeeze width = block input / 4, GlobalAveragePool, 1x1 convs with bias, Sigmoid gate), BN eps 1e-3,
 * stochastic depth and dropout are identities at inference.
 */
export const efficientnet_b0: ZooEntry = {
  info: {
    name: "efficientnet_b0",
    description: "EfficientNet-B0 (MBConv + SE, SiLU, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 5_288_548,
    gmacs: 0.39,
    reference: "torchvision.models.efficientnet_b0 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("efficientnet_b0", opts);
    let x = n.input([3, 224, 224]);
    x = n.convBnAct(x, "features.0", { cin: 3, cout: 32, k: 3, stride: 2 }, "silu", BN);
    B0.forEach(([t, k, s, stageIn, cout, reps], stage) => {
      for (let r = 0; r < reps; r++) {
        const p = `features.${stage + 1}.${r}`;
        const cin = r === 0 ? stageIn : cout;
        const stride = r === 0 ? s : 1;
        const hidden = cin * t;
        const residual = stride === 1 && cin === cout;
        let y = x;
        let j = 0;
        if (t !== 1) y = n.convBnAct(y, `${p}.block.${j++}`, { cin, cout: hidden, k: 1 }, "silu", BN);
        const dw = { cin: hidden, cout: hidden, k, stride, groups: hidden };
        y = n.convBnAct(y, `${p}.block.${j++}`, dw, "silu", BN);
        y = n.squeezeExcite(y, `${p}.block.${j++}`, hidden, Math.max(1, Math.floor(cin / 4)), "silu");
        const proj = n.conv(y, `${p}.block.${j}.conv`, { cin: hidden, cout, k: 1, bias: false });
        y = n.bn(proj, `${p}.block.${j}.bn`, cout, {
          ...BN,
          gamma: residual ? RESIDUAL_GAMMA : PROJECT_GAMMA,
        });
        x = residual ? n.add(y, x, `${p}.add`) : y;
      }
    });
    x = n.convBnAct(x, "features.8", { cin: 320, cout: 1280, k: 1 }, "silu", BN);
    x = n.globalPoolFlatten(x);
    n.linear(x, "classifier.1", 1280, 1000);
    return n.finish([1000]);
  },
};
