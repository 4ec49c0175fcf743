import type { ModelProto } from "onnx-buf";
import type { DType } from "../onnx/dtype.js";
import type { ZooBuildOptions } from "./layers.js";

/** A graph input or output of a zoo model at batch 1. */
export interface ZooTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Integer inputs: the valid values, [low, high) (token ids: [0, vocabulary size); a mask: [0, 2)). */
  range?: [number, number];
}

/** What the zoo knows about a model: its inputs, outputs and the reference figures its build must match. */
export interface ZooInfo {
  name: string;
  /** One line: the architecture and what it is faithful to. */
  description: string;
  /** Shape of the first input at batch 1 (`input`, NCHW, for the image models). */
  inputShape: number[];
  /** Shape of the first output at batch 1 (`output` for the classifiers). */
  outputShape: number[];
  /** Every graph input in order, at batch 1 (one float32 `input` unless the model says otherwise). */
  inputs: ZooTensor[];
  /** Every graph output in order, at batch 1 (one float32 `output` unless the model says otherwise). */
  outputs: ZooTensor[];
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

/** The facts a zoo entry states; `inputs` and `outputs` default to one float32 `input` and `output`. */
export type ZooEntryInfo = Omit<ZooInfo, "inputs" | "outputs"> & Partial<Pick<ZooInfo, "inputs" | "outputs">>;

/** A zoo model: its facts and its builder. */
export interface ZooEntry {
  readonly info: ZooEntryInfo;
  build(opts?: ZooBuildOptions): ModelProto;
}
