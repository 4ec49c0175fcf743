import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** ShuffleNetV2 x1.0: output channels of conv1, stage2-4 and conv5; blocks per stage. */
const CHANNELS = [24, 116, 232, 464, 1024];
const REPEATS = [4, 8, 4];

/** torch's channel_shuffle with 2 groups: Reshape [B, 2, C/2, H, W], Transpose(0, 2, 1, 3, 4), Reshape back. */
function channelShuffle(n: Net, x: string, name: string, c: number, hw: number): string {
  const B = n.batch;
  let y = n.reshape(x, [B, 2, c / 2, hw, hw], `${name}.shuffle.view`);
  y = n.transpose(y, [0, 2, 1, 3, 4], `${name}.shuffle.transpose`);
  return n.reshape(y, [B, c, hw, hw], `${name}.shuffle.flatten`);
}

/** torchvision `InvertedResidual`: two branches concatenated on channels, then a channel shuffle. */
function block(
  n: Net,
  x: string,
  name: string,
  cin: number,
  cout: number,
  stride: number,
  hw: number,
): string {
  const bf = cout / 2;
  let left: string;
  let right: string;
  if (stride === 1) {
    // x.chunk(2, dim=1): the left half passes through untouched.
    [left, right] = n.g.nodeN("Split", [x], { axis: 1 }, 2, `${name}.chunk`);
  } else {
    left = n.convBnAct(x, `${name}.branch1.0`, { cin, cout: cin, k: 3, stride, groups: cin }, "none");
    left = n.convBnAct(left, `${name}.branch1.2`, { cin, cout: bf, k: 1 }, "relu");
    right = x;
  }
  const rin = stride === 1 ? bf : cin;
  right = n.convBnAct(right, `${name}.branch2.0`, { cin: rin, cout: bf, k: 1 }, "relu");
  right = n.convBnAct(right, `${name}.branch2.3`, { cin: bf, cout: bf, k: 3, stride, groups: bf }, "none");
  right = n.convBnAct(right, `${name}.branch2.5`, { cin: bf, cout: bf, k: 1 }, "relu");
  const cat = n.concat([left, right], `${name}.cat`);
  return channelShuffle(n, cat, name, cout, hw);
}

/**
 * torchvision ShuffleNetV2 x1.0 at inference: 3x3 stem and max pool, three stages of `InvertedResidual`
 * blocks (the first at stride 2 with two convolutional branches, the others splitting the channels in half
 * and transforming one half), each ending in Concat and a channel shuffle through Reshape/Transpose/Reshape,
 * 1x1 conv to 1024, spatial mean (ReduceMean), FC. Many small nodes: ~60% of them move data only.
 */
export const shufflenet_v2_x1_0: ZooEntry = {
  info: {
    name: "shufflenet_v2_x1_0",
    description: "ShuffleNetV2 x1.0 (channel split + shuffle, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 2_278_604,
    gmacs: 0.14,
    reference: "torchvision.models.shufflenet_v2_x1_0 (IMAGENET1K_V1)",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("shufflenet_v2_x1_0", opts);
    let x = n.input([3, 224, 224]);
    x = n.convBnAct(x, "conv1.0", { cin: 3, cout: CHANNELS[0], k: 3, stride: 2 }, "relu");
    x = n.maxPool(x, "maxpool", 3, 2, 1);
    let hw = 56;
    let cin = CHANNELS[0];
    REPEATS.forEach((reps, s) => {
      const cout = CHANNELS[s + 1];
      for (let r = 0; r < reps; r++) {
        const stride = r === 0 ? 2 : 1;
        if (stride === 2) hw /= 2;
        x = block(n, x, `stage${s + 2}.${r}`, cin, cout, stride, hw);
        cin = cout;
      }
    });
    x = n.convBnAct(x, "conv5.0", { cin, cout: CHANNELS[4], k: 1 }, "relu");
    x = n.g.node("ReduceMean", [x], { axes: [2, 3], keepdims: 0 }, "mean");
    n.linear(x, "fc", CHANNELS[4], 1000);
    return n.finish([1000]);
  },
};
