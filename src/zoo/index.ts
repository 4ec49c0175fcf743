import type { ModelProto } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import type { ZooBuildOptions } from "./layers.js";
import type { ZooEntry, ZooInfo, ZooTensor } from "./types.js";
import { alexnet } from "./zoo-alexnet.js";
import { bert_mini } from "./zoo-bert.js";
import { densenet121 } from "./zoo-densenet.js";
import { ssdlite_fpn } from "./zoo-detector.js";
import { efficientnet_b0 } from "./zoo-efficientnet.js";
import { googlenet } from "./zoo-googlenet.js";
import { mobilenet_v2 } from "./zoo-mobilenet.js";
import { mobilenet_v3_small } from "./zoo-mobilenet-v3.js";
import { regnet_x_400mf } from "./zoo-regnet.js";
import { resnet18, resnet50 } from "./zoo-resnet.js";
import { shufflenet_v2_x1_0 } from "./zoo-shufflenet.js";
import { squeezenet1_1 } from "./zoo-squeezenet.js";
import { unet } from "./zoo-unet.js";
import { vgg16 } from "./zoo-vgg.js";
import { vit_tiny } from "./zoo-vit.js";

export type { ZooBuildOptions } from "./layers.js";
export type { ZooInfo, ZooTensor } from "./types.js";

const ENTRIES: readonly ZooEntry[] = [
  alexnet,
  vgg16,
  resnet18,
  resnet50,
  googlenet,
  squeezenet1_1,
  mobilenet_v2,
  efficientnet_b0,
  regnet_x_400mf,
  densenet121,
  shufflenet_v2_x1_0,
  mobilenet_v3_small,
  ssdlite_fpn,
  unet,
  vit_tiny,
  bert_mini,
];
const BY_NAME = new Map(ENTRIES.map((e) => [e.info.name, e]));

/** Names of the zoo's models, in a fixed order (classic CNNs first, then the detector, UNet and the transformers). */
export function zooNames(): string[] {
  return ENTRIES.map((e) => e.info.name);
}

function entry(name: string): ZooEntry {
  const e = BY_NAME.get(name);
  if (e === undefined) {
    throw new ArgumentError(
      `unknown zoo model '${name}' (available: ${zooNames().join(", ")})`,
      { field: "model" },
      "UNKNOWN_MODEL",
    );
  }
  return e;
}

/** Facts and reference figures (published params and GMACs) of a zoo model; a copy, safe to mutate. */
export function zooInfo(name: string): ZooInfo {
  const i = entry(name).info;
  const copy = (ts: readonly ZooTensor[]) =>
    ts.map((t) => ({
      ...t,
      shape: [...t.shape],
      ...(t.range ? { range: [...t.range] as [number, number] } : {}),
    }));
  return {
    ...i,
    inputShape: [...i.inputShape],
    outputShape: [...i.outputShape],
    inputs: copy(i.inputs ?? [{ name: "input", dtype: "float32", shape: i.inputShape }]),
    outputs: copy(i.outputs ?? [{ name: "output", dtype: "float32", shape: i.outputShape }]),
  };
}

/**
 * Builds a zoo model as an ONNX ModelProto (opset 17; the image classifiers take float32 `input`
 * [batch, 3, H, W] and write `output`, the others declare theirs in {@link zooInfo}) with seeded pseudo-random weights: the same name, seed and batch give byte-identical models.
 * Throws ArgumentError (code UNKNOWN_MODEL) for a name not in {@link zooNames}.
 */
export function buildZooModel(name: string, opts: ZooBuildOptions = {}): ModelProto {
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new ArgumentError(`zoo model '${name}': batch must be a positive integer, got ${batch}`, {
      field: "batch",
    });
  }
  return entry(name).build(opts);
}
