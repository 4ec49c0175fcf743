import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** Inverted residual settings: [expand ratio t, output channels c, repeats n, first stride s]. */
const SETTINGS: ReadonlyArray<[number, number, number, number]> = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** Gamma of the projection BN of residual blocks: keeps the residual sum's variance bounded. */
const RESIDUAL_GAMMA = 0.25;

/**
 * torchvision MobileNetV2 (width 1.0): inverted residual blocks (1x1 expand + ReLU6, 3x3 depthwise + ReLU6,
 * linear 1x1 projection, residual when stride 1 and shapes match), 1x1 conv to 1280, pool, FC.
 * ReLU6 is Clip(0, 6).
 */
export const mobilenet_v2: ZooEntry = {
  info: {
    name: "mobilenet_v2",
    description: "MobileNetV2 (width 1.0, inverted residuals, ReLU6, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 3_504_872,
    gmacs: 0.3,
    reference: "torchvision.models.mobilenet_v2 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("mobilenet_v2", opts);
    let x = n.input([3, 224, 224]);
    x = n.convBnAct(x, "features.0", { cin: 3, cout: 32, k: 3, stride: 2 }, "relu6");
    let cin = 32;
    let idx = 1;
    for (const [t, c, reps, s] of SETTINGS) {
      for (let r = 0; r < reps; r++) {
        const p = `features.${idx++}`;
        const stride = r === 0 ? s : 1;
        const hidden = cin * t;
        const residual = stride === 1 && cin === c;
        let y = x;
        let j = 0;
        if (t !== 1) y = n.convBnAct(y, `${p}.conv.${j++}`, { cin, cout: hidden, k: 1 }, "relu6");
        y = n.convBnAct(
          y,
          `${p}.conv.${j++}`,
          { cin: hidden, cout: hidden, k: 3, stride, groups: hidden },
          "relu6",
        );
        y = n.conv(y, `${p}.conv.${j++}`, { cin: hidden, cout: c, k: 1, bias: false });
        y = n.bn(y, `${p}.conv.${j}`, c, { gamma: residual ? RESIDUAL_GAMMA : 1 });
        x = residual ? n.add(x, y, `${p}.add`) : y;
        cin = c;
      }
    }
    x = n.convBnAct(x, `features.${idx}`, { cin, cout: 1280, k: 1 }, "relu6");
    x = n.globalPoolFlatten(x);
    n.linear(x, "classifier.1", 1280, 1000);
    return n.finish([1000]);
  },
};
