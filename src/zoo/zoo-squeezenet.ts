import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** A Fire module: 1x1 squeeze + ReLU, then 1x1 and 3x3 expands (each + ReLU) concatenated. */
function fire(n: Net, x: string, name: string, cin: number, sq: number, e1: number, e3: number): string {
  const s = n.act(n.conv(x, `${name}.squeeze`, { cin, cout: sq, k: 1 }), "relu", `${name}.squeeze`);
  const a = n.act(n.conv(s, `${name}.expand1x1`, { cin: sq, cout: e1, k: 1 }), "relu", `${name}.expand1x1`);
  const b = n.act(n.conv(s, `${name}.expand3x3`, { cin: sq, cout: e3, k: 3 }), "relu", `${name}.expand3x3`);
  return n.concat([a, b], `${name}.concat`);
}

/**
 * torchvision SqueezeNet 1.1: 3x3 stem, ceil-mode max pools, eight Fire modules, a 1x1 conv classifier with
 * ReLU and global average pooling. No batch norm; every conv has a bias.
 */
export const squeezenet1_1: ZooEntry = {
  info: {
    name: "squeezenet1_1",
    description: "SqueezeNet 1.1 (Fire modules, conv classifier, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 1_235_496,
    gmacs: 0.35,
    reference: "torchvision.models.squeezenet1_1 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("squeezenet1_1", opts);
    let x = n.input([3, 224, 224]);
    x = n.act(n.conv(x, "features.0", { cin: 3, cout: 64, k: 3, stride: 2, pad: 0 }), "relu", "features.0");
    x = n.maxPool(x, "features.2", 3, 2, 0, true);
    x = fire(n, x, "features.3", 64, 16, 64, 64);
    x = fire(n, x, "features.4", 128, 16, 64, 64);
    x = n.maxPool(x, "features.5", 3, 2, 0, true);
    x = fire(n, x, "features.6", 128, 32, 128, 128);
    x = fire(n, x, "features.7", 256, 32, 128, 128);
    x = n.maxPool(x, "features.8", 3, 2, 0, true);
    x = fire(n, x, "features.9", 256, 48, 192, 192);
    x = fire(n, x, "features.10", 384, 48, 192, 192);
    x = fire(n, x, "features.11", 384, 64, 256, 256);
    x = fire(n, x, "features.12", 512, 64, 256, 256);
    x = n.act(n.conv(x, "classifier.1", { cin: 512, cout: 1000, k: 1 }), "relu", "classifier.1");
    x = n.g.node("GlobalAveragePool", [x], {}, "classifier.3");
    n.g.node("Flatten", [x], { axis: 1 }, "flatten");
    return n.finish([1000]);
  },
};
