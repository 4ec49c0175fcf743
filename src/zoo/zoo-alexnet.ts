import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/**
 * torchvision AlexNet at 224x224: five convs with bias and ReLU, three max pools, then three fully
 * connected layers. At 224 the last pool already yields 6x6, so torchvision's AdaptiveAvgPool2d(6) is the
 * identity and is left out; dropout is the identity at inference.
 */
export const alexnet: ZooEntry = {
  info: {
    name: "alexnet",
    description: "AlexNet (torchvision variant, 5 conv + 3 FC, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 61_100_840,
    gmacs: 0.71,
    reference: "torchvision.models.alexnet (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("alexnet", opts);
    let x = n.input([3, 224, 224]);
    const convs: Array<[number, number, number, number, number, boolean]> = [
      // [cin, cout, k, stride, pad, maxpool after]
      [3, 64, 11, 4, 2, true],
      [64, 192, 5, 1, 2, true],
      [192, 384, 3, 1, 1, false],
      [384, 256, 3, 1, 1, false],
      [256, 256, 3, 1, 1, true],
    ];
    let i = 0;
    for (const [cin, cout, k, stride, pad, pool] of convs) {
      const name = `features.${i}`;
      x = n.act(n.conv(x, name, { cin, cout, k, stride, pad }), "relu", name);
      i += 2;
      if (pool) {
        x = n.maxPool(x, `features.${i}`, 3, 2);
        i += 1;
      }
    }
    x = n.g.node("Flatten", [x], { axis: 1 }, "flatten");
    x = n.act(n.linear(x, "classifier.1", 256 * 6 * 6, 4096), "relu", "classifier.1");
    x = n.act(n.linear(x, "classifier.4", 4096, 4096), "relu", "classifier.4");
    n.linear(x, "classifier.6", 4096, 1000);
    return n.finish([1000]);
  },
};
