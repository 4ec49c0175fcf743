import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** Channels of the first level; each level down doubles them. */
const BASE = 16;
/** Number of 2x down-samplings (the bottleneck sits at 256 / 2^LEVELS). */
const LEVELS = 4;
const CLASSES = 2;
const SIZE = 256;

/** Two (3x3 conv without bias + BN + ReLU) layers. */
function doubleConv(n: Net, x: string, name: string, cin: number, cout: number): string {
  const y = n.convBnAct(x, `${name}.0`, { cin, cout, k: 3 }, "relu");
  return n.convBnAct(y, `${name}.1`, { cin: cout, cout, k: 3 }, "relu");
}

/**
 * A small U-Net (Ronneberger et al. 2015, in the layout of the common PyTorch-UNet with BN): four encoder
 * levels of double 3x3 convs and 2x2 max pools, a bottleneck, four decoder levels that upsample with a 2x2
 * stride-2 ConvTranspose and Concat the encoder features of the same resolution (long skips), a 1x1 conv
 * to per-pixel class logits. Base width 16, 2 classes, 256x256 input.
 */
export const unet: ZooEntry = {
  info: {
    name: "unet",
    description: "U-Net (base 16, 4 levels, ConvTranspose up-sampling, Concat skips, 2 classes, 256x256)",
    inputShape: [1, 3, SIZE, SIZE],
    outputShape: [1, CLASSES, SIZE, SIZE],
    // Our own analytic figures (trainable tensors; conv/ConvTranspose MACs), see test/zoo.test.ts.
    params: 1_942_594,
    gmacs: 3.034,
    reference: "cleave (analytic count of this architecture)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("unet", opts);
    let x = n.input([3, SIZE, SIZE]);
    const skips: string[] = [];
    let c = BASE;
    x = doubleConv(n, x, "inc", 3, c);
    for (let l = 1; l <= LEVELS; l++) {
      skips.push(x);
      x = n.maxPool(x, `down${l}.pool`, 2, 2);
      x = doubleConv(n, x, `down${l}.conv`, c, c * 2);
      c *= 2;
    }
    for (let l = 1; l <= LEVELS; l++) {
      const up = n.convTranspose(x, `up${l}.up`, c, c / 2, 2);
      x = n.concat([skips.pop()!, up], `up${l}.concat`);
      x = doubleConv(n, x, `up${l}.conv`, c, c / 2);
      c /= 2;
    }
    n.conv(x, "outc", { cin: c, cout: CLASSES, k: 1 });
    return n.finish([CLASSES, SIZE, SIZE]);
  },
};
