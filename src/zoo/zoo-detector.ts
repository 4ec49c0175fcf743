import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry, ZooTensor } from "./types.js";
import { mobilenetV3SmallFeatures } from "./zoo-mobilenet-v3.js";

const SIZE = 320;
/** FPN width, anchors per location, classes (COCO with background, as torchvision's detectors). */
const FPN = 96;
const ANCHORS = 6;
const CLASSES = 91;
/** Backbone taps (index into the feature list) and their channels: strides 8, 16 and 32. */
const TAPS: ReadonlyArray<[number, number]> = [
  [3, 24],
  [8, 48],
  [12, 576],
];
/** Pyramid levels: P3-P5 from the taps, P6 by a stride-2 conv on P5. */
const LEVELS = [3, 4, 5, 6];

function grid(level: number): number {
  return SIZE / 2 ** level;
}

function headOutputs(): ZooTensor[] {
  return LEVELS.flatMap((l) => [
    { name: `cls_p${l}`, dtype: "float32" as const, shape: [1, ANCHORS * CLASSES, grid(l), grid(l)] },
    { name: `box_p${l}`, dtype: "float32" as const, shape: [1, ANCHORS * 4, grid(l), grid(l)] },
  ]);
}

/** Parameters of one head tower and its predictor, created once and read at every pyramid level. */
interface SharedHead {
  dw: string[];
  pw: string[];
  pred: string[];
}

function sharedHead(n: Net, name: string, outChannels: number): SharedHead {
  const w = (suffix: string, shape: number[]) => n.g.weight(`${name}.${suffix}`, shape, "he");
  return {
    dw: [w("tower.dw.weight", [FPN, 1, 3, 3]), n.bias(`${name}.tower.dw.bias`, FPN)],
    pw: [w("tower.pw.weight", [FPN, FPN, 1, 1]), n.bias(`${name}.tower.pw.bias`, FPN)],
    pred: [w("predictor.weight", [outChannels, FPN, 1, 1]), n.bias(`${name}.predictor.bias`, outChannels)],
  };
}

/** An SSDlite-style head on one level: depthwise 3x3 + ReLU, pointwise 1x1 + ReLU, 1x1 predictor. */
function applyHead(n: Net, x: string, h: SharedHead, name: string, out: string): string {
  const pads = { pads: [1, 1, 1, 1], kernel_shape: [3, 3], group: FPN };
  let y = n.g.node(
    "Relu",
    [n.g.node("Conv", [x, ...h.dw], pads, `${name}.tower.dw`)],
    {},
    `${name}.tower.dw.relu`,
  );
  y = n.g.node("Relu", [n.g.node("Conv", [y, ...h.pw], {}, `${name}.tower.pw`)], {}, `${name}.tower.pw.relu`);
  return n.g.node("Conv", [y, ...h.pred], {}, out);
}

/**
 * A single-shot detector with several output heads: the MobileNetV3-Small backbone (torchvision's layers) at
 * 320x320, a feature pyramid (1x1 laterals on the stride 8/16/32 features, nearest 2x Resize and Add top-down,
 * 3x3 smoothing; P6 by a stride-2 conv), and class and box heads whose weights are shared by the four levels
 * (RetinaNet-style, SSDlite depthwise-separable towers): eight graph outputs, `cls_p3`..`cls_p6` with 6 anchors
 * x 91 classes and `box_p3`..`box_p6` with 6 x 4 box offsets, raw (no decoding or NMS, as exported heads are).
 */
export const ssdlite_fpn: ZooEntry = {
  info: {
    name: "ssdlite_fpn",
    description: "SSDlite-style detector: MobileNetV3-Small + FPN P3-P6, shared class/box heads, 320x320",
    inputShape: [1, 3, SIZE, SIZE],
    outputShape: [1, ANCHORS * CLASSES, grid(3), grid(3)],
    outputs: headOutputs(),
    params: 1_397_502,
    gmacs: 0.458,
    reference:
      "no published model: its own figures (backbone 927,008 as torchvision's, FPN, heads), to catch drift",
  },
  build(opts: ZooBuildOptions = {}) {
    const n = new Net("ssdlite_fpn", opts);
    const B = n.batch;
    const taps = mobilenetV3SmallFeatures(n, n.input([3, SIZE, SIZE]));
    const lateral = TAPS.map(([t, c], i) => n.conv(taps[t], `fpn.inner.${i}`, { cin: c, cout: FPN, k: 1 }));
    const scales = n.g.constant("fpn.upsample.scales", "float32", [4], Float32Array.of(1, 1, 2, 2));
    const merged = [lateral[2]];
    for (let i = 1; i >= 0; i--) {
      const up = n.g.node("Resize", [merged[0], "", scales], { mode: "nearest" }, `fpn.upsample.${i}`);
      merged.unshift(n.add(lateral[i], up, `fpn.merge.${i}`));
    }
    const p = merged.map((m, i) => n.conv(m, `fpn.layer.${i}`, { cin: FPN, cout: FPN, k: 3 }));
    p.push(n.conv(p[2], "fpn.extra", { cin: FPN, cout: FPN, k: 3, stride: 2 }));
    const cls = sharedHead(n, "head.classification", ANCHORS * CLASSES);
    const box = sharedHead(n, "head.regression", ANCHORS * 4);
    const outs = headOutputs();
    const written = LEVELS.flatMap((l, i) => [
      applyHead(n, p[i], cls, `head.classification.p${l}`, `cls_p${l}`),
      applyHead(n, p[i], box, `head.regression.p${l}`, `box_p${l}`),
    ]);
    return n.finishOutputs(outs.map((o, i) => ({ name: written[i], shape: [B, ...o.shape.slice(1)] })));
  },
};
