import type { ModelProto } from "onnx-buf";
import type { ZooBuildOptions } from "./layers.js";

/** What the zoo knows about a model: its input and the reference figures its build must match. */
export interface ZooInfo {
  name: string;
  /** One line: the architecture and what it is faithful to. */
  description: string;
  /** Shape of `input` at batch 1, NCHW. */
  inputShape: number[];
  /** Shape of `output` at batch 1. */
  outputShape: number[];
  /**
   * Reference parameter count (elements): torchvision's published figure, which counts trainable tensors
   * only. The built model also stores BatchNormalization running mean/var as initializers (<= 0.5% more).
   */
  params: number;
  /** Reference multiply-accumulates at `inputShape`, in billions (GMACs; torchvision calls them "GFLOPS"). */
  gmacs: number;
  /** Where `params` and `gmacs` come from. */
  reference: string;
}

/** A zoo model: its facts and its builder. */
export interface ZooEntry {
  readonly info: ZooInfo;
  build(opts?: ZooBuildOptions): ModelProto;
}
