import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** VGG-16 (configuration "D"): five blocks of 3x3 convs (output channels), each followed by a 2x2 max pool. */
const VGG16: ReadonlyArray<readonly number[]> = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];

/**
 * torchvision VGG-16 without batch norm at 224x224: 13 3x3 convs with bias and ReLU, five max pools,
 * three fully connected layers. At 224 the features are already 7x7, so AdaptiveAvgPool2d(7) is the
 * identity and is left out.
 */
export const vgg16: ZooEntry = {
  info: {
    name: "vgg16",
    description: "VGG-16 (configuration D, no batch norm, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 138_357_544,
    gmacs: 15.47,
    reference: "torchvision.models.vgg16 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("vgg16", opts);
    let x = n.input([3, 224, 224]);
    let cin = 3;
    let i = 0; // index in torchvision's `features` Sequential: conv, ReLU, ..., MaxPool
    for (const block of VGG16) {
      for (const cout of block) {
        const name = `features.${i}`;
        x = n.act(n.conv(x, name, { cin, cout, k: 3, pad: 1 }), "relu", name);
        cin = cout;
        i += 2;
      }
      x = n.maxPool(x, `features.${i}`, 2, 2);
      i += 1;
    }
    x = n.g.node("Flatten", [x], { axis: 1 }, "flatten");
    x = n.act(n.linear(x, "classifier.0", 512 * 7 * 7, 4096), "relu", "classifier.0");
    x = n.act(n.linear(x, "classifier.3", 4096, 4096), "relu", "classifier.3");
    n.linear(x, "classifier.6", 4096, 1000);
    return n.finish([1000]);
  },
};
