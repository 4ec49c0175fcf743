import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry, ZooEntryInfo } from "./types.js";

/** Gamma of the last BatchNormalization of each residual branch: keeps the residual sum's variance bounded. */
const RESIDUAL_GAMMA = 0.25;

interface ResNetSpec {
  block: "basic" | "bottleneck";
  /** Blocks per stage (four stages of widths 64, 128, 256, 512). */
  layers: [number, number, number, number];
}

/**
 * torchvision ResNet (v1.5: the stride sits on the 3x3 conv of a bottleneck): 7x7 stem, max pool, four
 * stages of residual blocks with a 1x1 conv + BN projection where the shape changes, global average pool, FC.
 */
function buildResNet(name: string, spec: ResNetSpec, opts: ZooBuildOptions) {
  const n = new Net(name, opts);
  const expansion = spec.block === "basic" ? 1 : 4;
  let x = n.input([3, 224, 224]);
  x = n.conv(x, "conv1", { cin: 3, cout: 64, k: 7, stride: 2, pad: 3, bias: false });
  x = n.act(n.bn(x, "bn1", 64), "relu", "bn1");
  x = n.maxPool(x, "maxpool", 3, 2, 1);
  let cin = 64;
  spec.layers.forEach((blocks, stage) => {
    const width = 64 << stage;
    for (let b = 0; b < blocks; b++) {
      const p = `layer${stage + 1}.${b}`;
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const cout = width * expansion;
      let y: string;
      if (spec.block === "basic") {
        y = n.conv(x, `${p}.conv1`, { cin, cout: width, k: 3, stride, bias: false });
        y = n.act(n.bn(y, `${p}.bn1`, width), "relu", `${p}.bn1`);
        y = n.conv(y, `${p}.conv2`, { cin: width, cout: width, k: 3, bias: false });
        y = n.bn(y, `${p}.bn2`, width, { gamma: RESIDUAL_GAMMA });
      } else {
        y = n.conv(x, `${p}.conv1`, { cin, cout: width, k: 1, bias: false });
        y = n.act(n.bn(y, `${p}.bn1`, width), "relu", `${p}.bn1`);
        y = n.conv(y, `${p}.conv2`, { cin: width, cout: width, k: 3, stride, bias: false });
        y = n.act(n.bn(y, `${p}.bn2`, width), "relu", `${p}.bn2`);
        y = n.conv(y, `${p}.conv3`, { cin: width, cout, k: 1, bias: false });
        y = n.bn(y, `${p}.bn3`, cout, { gamma: RESIDUAL_GAMMA });
      }
      let shortcut = x;
      if (stride !== 1 || cin !== cout) {
        shortcut = n.conv(x, `${p}.downsample.0`, { cin, cout, k: 1, stride, bias: false });
        shortcut = n.bn(shortcut, `${p}.downsample.1`, cout);
      }
      x = n.act(n.add(y, shortcut, `${p}.add`), "relu", p);
      cin = cout;
    }
  });
  x = n.globalPoolFlatten(x);
  n.linear(x, "fc", cin, 1000);
  return n.finish([1000]);
}

function resnetEntry(info: ZooEntryInfo, spec: ResNetSpec): ZooEntry {
  return { info, build: (opts: ZooBuildOptions = {}) => buildResNet(info.name, spec, opts) };
}

/** torchvision ResNet-18: basic blocks [2, 2, 2, 2]. */
export const resnet18 = resnetEntry(
  {
    name: "resnet18",
    description: "ResNet-18 (basic blocks 2-2-2-2, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 11_689_512,
    gmacs: 1.81,
    reference: "torchvision.models.resnet18 (IMAGENET1K_V1)",
  },
  { block: "basic", layers: [2, 2, 2, 2] },
);

/** torchvision ResNet-50 (v1.5): bottleneck blocks [3, 4, 6, 3]. */
export const resnet50 = resnetEntry(
  {
    name: "resnet50",
    description: "ResNet-50 v1.5 (bottleneck blocks 3-4-6-3, stride on the 3x3, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 25_557_032,
    gmacs: 4.09,
    reference: "torchvision.models.resnet50 (IMAGENET1K_V1)",
  },
  { block: "bottleneck", layers: [3, 4, 6, 3] },
);
