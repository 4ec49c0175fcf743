import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** [in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5" (a 3x3 in torchvision), pool projection]. */
type InceptionSpec = [number, number, number, number, number, number, number];

const BN_EPS = 1e-3;

/** torchvision BasicConv2d: conv (no bias) + BN(eps 1e-3) + ReLU. */
function basicConv(
  n: Net,
  x: string,
  name: string,
  cin: number,
  cout: number,
  k: number,
  stride = 1,
): string {
  return n.convBnAct(x, name, { cin, cout, k, stride }, "relu", { eps: BN_EPS });
}

/** An inception module: four branches concatenated on channels. */
function inception(n: Net, x: string, name: string, s: InceptionSpec): string {
  const [cin, c1, c3r, c3, c5r, c5, pp] = s;
  const b1 = basicConv(n, x, `${name}.branch1`, cin, c1, 1);
  let b2 = basicConv(n, x, `${name}.branch2.0`, cin, c3r, 1);
  b2 = basicConv(n, b2, `${name}.branch2.1`, c3r, c3, 3);
  let b3 = basicConv(n, x, `${name}.branch3.0`, cin, c5r, 1);
  b3 = basicConv(n, b3, `${name}.branch3.1`, c5r, c5, 3);
  let b4 = n.maxPool(x, `${name}.branch4.0`, 3, 1, 1, true);
  b4 = basicConv(n, b4, `${name}.branch4.1`, cin, pp, 1);
  return n.concat([b1, b2, b3, b4], `${name}.concat`);
}

/**
 * torchvision GoogLeNet (Inception v1) at inference: no auxiliary heads, no input transform; its "5x5"
 * branch uses a 3x3 conv as torchvision's does. Pools use ceil_mode as torchvision does.
 */
export const googlenet: ZooEntry = {
  info: {
    name: "googlenet",
    description: "GoogLeNet / Inception v1 (torchvision, BN, no aux heads, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 6_624_904,
    gmacs: 1.5,
    reference: "torchvision.models.googlenet (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("googlenet", opts);
    let x = n.input([3, 224, 224]);
    x = basicConv(n, x, "conv1", 3, 64, 7, 2);
    x = n.maxPool(x, "maxpool1", 3, 2, 0, true);
    x = basicConv(n, x, "conv2", 64, 64, 1);
    x = basicConv(n, x, "conv3", 64, 192, 3);
    x = n.maxPool(x, "maxpool2", 3, 2, 0, true);
    x = inception(n, x, "inception3a", [192, 64, 96, 128, 16, 32, 32]);
    x = inception(n, x, "inception3b", [256, 128, 128, 192, 32, 96, 64]);
    x = n.maxPool(x, "maxpool3", 3, 2, 0, true);
    x = inception(n, x, "inception4a", [480, 192, 96, 208, 16, 48, 64]);
    x = inception(n, x, "inception4b", [512, 160, 112, 224, 24, 64, 64]);
    x = inception(n, x, "inception4c", [512, 128, 128, 256, 24, 64, 64]);
    x = inception(n, x, "inception4d", [512, 112, 144, 288, 32, 64, 64]);
    x = inception(n, x, "inception4e", [528, 256, 160, 320, 32, 128, 128]);
    x = n.maxPool(x, "maxpool4", 2, 2, 0, true);
    x = inception(n, x, "inception5a", [832, 256, 160, 320, 32, 128, 128]);
    x = inception(n, x, "inception5b", [832, 384, 192, 384, 48, 128, 128]);
    x = n.globalPoolFlatten(x);
    n.linear(x, "fc", 1024, 1000);
    return n.finish([1000]);
  },
};
