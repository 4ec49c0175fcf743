import type { DType } from "../onnx/dtype.js";
import type { TensorEncoding } from "../onnx/encoding.js";

/** A tensor crossing a stage boundary or the model boundary. */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: DType;
}

/** A stage's external data file: the tensors of a stage model too large for one protobuf message. */
export interface StageDataFile {
  /** File name, relative to the manifest's folder (the stage file's `location` for its tensors). */
  file: string;
  /** Length, bytes. */
  bytes: number;
  /** SHA-256 of the file (hex). */
  sha256: string;
}

/** One stage of a split model, as written to `manifest.json`. */
export interface ManifestStage {
  /** 0-based position in the pipeline. */
  index: number;
  /** Stage model file, relative to the manifest's folder. */
  file: string;
  /** Tensor names the stage reads: model inputs or outputs of earlier stages. */
  inputs: string[];
  /** Tensor names the stage produces for later stages or the caller. */
  outputs: string[];
  params: number;
  macs: number;
  /** Bytes of the stage's inputs (activations only, not weights). */
  bytesIn: number;
  /** Bytes of the stage's outputs. */
  bytesOut: number;
  /** Number of original nodes the stage runs. */
  nodes: number;
  /** Device that runs the stage, when a plan assigned one (the first of its replica group). */
  device?: string;
  /** Every device that runs the stage when the plan replicates it (each loads this same file). */
  devices?: string[];
  /** SHA-256 of the stage file (hex), so a worker can verify what it was sent. */
  sha256: string;
  /** Length of the stage file, bytes (absent in manifests written before it was recorded). */
  fileBytes?: number;
  /**
   * External data of a stage whose model would pass protobuf's 2 GB limit: its weights are stored in this
   * file beside the stage file, which names it as their `location`.
   */
  data?: StageDataFile;
}

/** `manifest.json`: how a model was split and how data flows between its stages. */
export interface Manifest {
  /** Format version of this file. */
  version: 1;
  /** Path of the source model as given to split. */
  model: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Type of every tensor that crosses a stage boundary or the model boundary. */
  tensors: Record<string, TensorSpec>;
  /** Cut tensors sent encoded (`X::u8` between stages), with their scales and zero points; absent: none. */
  encodings?: TensorEncoding[];
  stages: ManifestStage[];
}
