import type { ModelProto } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import type { ZooBuildOptions } from "./layers.js";
import type { ZooEntry, ZooInfo } from "./types.js";
import { alexnet } from "./zoo-alexnet.js";
import { efficientnet_b0 } from "./zoo-efficientnet.js";
import { googlenet } from "./zoo-googlenet.js";
import { mobilenet_v2 } from "./zoo-mobilenet.js";
import { regnet_x_400mf } from "./zoo-regnet.js";
import { resnet18, resnet50 } from "./zoo-resnet.js";
import { squeezenet1_1 } from "./zoo-squeezenet.js";
import { unet } from "./zoo-unet.js";
import { vgg16 } from "./zoo-vgg.js";
import { vit_tiny } from "./zoo-vit.js";

export type { ZooBuildOptions } from "./layers.js";
export type { ZooInfo } from "./types.js";

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
  unet,
  vit_tiny,
];
const BY_NAME = new Map(ENTRIES.map((e) => [e.info.name, e]));

/** Names of the zoo's models, in a fixed order (classic CNNs first, then UNet and ViT). */
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
  return { ...i, inputShape: [...i.inputShape], outputShape: [...i.outputShape] };
}

/**
 * Builds a zoo model as an ONNX ModelProto (opset 17, float32, input `input` [batch, 3, H, W], output
 * `output`) with seeded pseudo-random weights: the same name, seed and batch give byte-identical models.
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
