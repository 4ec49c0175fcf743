import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** DenseNet-121: layers per dense block, growth rate, bottleneck width factor, stem channels. */
const BLOCKS = [6, 12, 24, 16];
const GROWTH = 32;
const BN_SIZE = 4;
const STEM = 64;

/**
 * One dense layer as torchvision's `_DenseLayer` exports it: Concat of every feature map so far (the block
 * input and each earlier layer's output), BN + ReLU + 1x1 conv to 4 x growth, BN + ReLU + 3x3 conv to growth.
 */
function denseLayer(n: Net, features: readonly string[], name: string, cin: number): string {
  const x = features.length === 1 ? features[0] : n.concat(features, `${name}.cat`);
  let y = n.act(n.bn(x, `${name}.norm1`, cin), "relu", `${name}.norm1`);
  y = n.conv(y, `${name}.conv1`, { cin, cout: BN_SIZE * GROWTH, k: 1, bias: false });
  y = n.act(n.bn(y, `${name}.norm2`, BN_SIZE * GROWTH), "relu", `${name}.norm2`);
  return n.conv(y, `${name}.conv2`, { cin: BN_SIZE * GROWTH, cout: GROWTH, k: 3, bias: false });
}

/**
 * torchvision DenseNet-121 at inference: 7x7 stem, four dense blocks (6, 12, 24, 16 layers, growth 32) in
 * which every layer reads the Concat of all earlier feature maps of its block, transitions (BN, ReLU, 1x1 conv
 * halving the channels, 2x2 average pool), final BN + ReLU, pool, FC. The widest cuts of the zoo: inside a
 * block every earlier output is alive until the block ends.
 */
export const densenet121: ZooEntry = {
  info: {
    name: "densenet121",
    description: "DenseNet-121 (dense blocks 6/12/24/16, growth 32, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 7_978_856,
    gmacs: 2.83,
    reference: "torchvision.models.densenet121 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("densenet121", opts);
    let x = n.input([3, 224, 224]);
    x = n.conv(x, "features.conv0", { cin: 3, cout: STEM, k: 7, stride: 2, pad: 3, bias: false });
    x = n.act(n.bn(x, "features.norm0", STEM), "relu", "features.norm0");
    x = n.maxPool(x, "features.pool0", 3, 2, 1);
    let c = STEM;
    BLOCKS.forEach((layers, b) => {
      const block = `features.denseblock${b + 1}`;
      const features = [x];
      for (let l = 0; l < layers; l++) {
        features.push(denseLayer(n, features, `${block}.denselayer${l + 1}`, c + l * GROWTH));
      }
      c += layers * GROWTH;
      x = n.concat(features, `${block}.cat`);
      if (b < BLOCKS.length - 1) {
        const t = `features.transition${b + 1}`;
        x = n.act(n.bn(x, `${t}.norm`, c), "relu", `${t}.norm`);
        x = n.conv(x, `${t}.conv`, { cin: c, cout: c / 2, k: 1, bias: false });
        x = n.avgPool(x, `${t}.pool`, 2, 2);
        c /= 2;
      }
    });
    x = n.act(n.bn(x, "features.norm5", c), "relu", "features.norm5");
    x = n.globalPoolFlatten(x);
    n.linear(x, "classifier", c, 1000);
    return n.finish([1000]);
  },
};
