import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ArgumentError, CleaveError, errorMessage } from "../errors.js";
import { outputError, writeOutputFile } from "../output-file.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { encodedSize, PROTOBUF_LIMIT_BYTES, saveModel } from "../onnx/model-io.js";
import type { Manifest, TensorSpec } from "./manifest.js";
import type { StageModel } from "./stage.js";
import type { TensorEncoding } from "../onnx/encoding.js";

/** Options for {@link writeSplit}. */
export interface WriteOptions {
  /** The source model's path, recorded in the manifest. */
  modelPath: string;
  /**
   * Device of each stage, or its replica group (every device that runs it, first one first), recorded in the
   * manifest as `device` (the first) and, for a group of two or more, `devices`. A replicated stage has one
   * file, which each of its replicas loads.
   */
  devices?: readonly (string | readonly string[])[];
  /**
   * A stage model larger than this, bytes, is written with its tensors of 1 KiB or more in external data
   * (`stage-<i>.onnx.data`); default PROTOBUF_LIMIT_BYTES, the most one ONNX protobuf can hold.
   */
  externalDataAbove?: number;
  /** Cut tensors the stages send encoded, recorded in the manifest (see `encodeStages`). */
  encodings?: readonly TensorEncoding[];
}

/** Tensors of at least this many bytes go to a stage's external data file (onnx.save_model's threshold). */
const EXTERNAL_TENSOR_BYTES = 1024;

/**
 * Writes stage models `stage-<i>.onnx` and `manifest.json` into `outDir`; a stage over protobuf's limit
 * (`externalDataAbove`) keeps its weights in `stage-<i>.onnx.data` beside it, recorded in the manifest.
 * Everything is written into a temporary sibling folder first and moved in only when complete, so a failure leaves `outDir` as it was.
 * Stage files of an earlier split in `outDir` are replaced.
 */
export function writeSplit(
  model: AnalyzedModel,
  stages: readonly StageModel[],
  outDir: string,
  opts: WriteOptions,
): Manifest {
  const out = resolve(outDir);
  if (existsSync(out) && !statSync(out).isDirectory()) {
    throw new ArgumentError(`-o ${outDir}: exists and is not a folder`, { file: outDir, field: "o" });
  }
  const parent = dirname(out);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (err) {
    throw new ArgumentError(`-o ${outDir}: cannot create its parent folder (${errorMessage(err)})`, {
      file: outDir,
    });
  }
  const tmp = join(parent, `.${basename(out)}.tmp-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(tmp);
  } catch (err) {
    throw outputError(outDir, err);
  }
  try {
    const spec = (name: string): TensorSpec => {
      const t = model.types.get(name);
      return { name, shape: t?.shape ?? [], dtype: t?.dtype ?? "float32" };
    };
    const tensors: Record<string, TensorSpec> = {};
    const manifest: Manifest = {
      version: 1,
      model: opts.modelPath,
      inputs: model.graph.inputs.map((v) => spec(v.name)),
      outputs: model.graph.outputs.map((v) => spec(v.name)),
      tensors,
      ...(opts.encodings && opts.encodings.length > 0 ? { encodings: [...opts.encodings] } : {}),
      stages: stages.map((st) => {
        const file = `stage-${st.index}.onnx`;
        const external = encodedSize(st.model) > (opts.externalDataAbove ?? PROTOBUF_LIMIT_BYTES);
        const saved = saveModel(
          st.model,
          join(tmp, file),
          external ? { externalDataThreshold: EXTERNAL_TENSOR_BYTES } : {},
        );
        for (const n of [...st.inputs, ...st.outputs]) tensors[n] = st.tensorTypes?.[n] ?? spec(n);
        return {
          index: st.index,
          file,
          inputs: st.inputs,
          outputs: st.outputs,
          params: st.params,
          macs: st.macs,
          bytesIn: st.bytesIn,
          bytesOut: st.bytesOut,
          nodes: st.nodes.length,
          ...stageDevicesField(opts.devices?.[st.index], st.index),
          sha256: saved.sha256,
          fileBytes: saved.bytes,
          ...(saved.data
            ? { data: { file: saved.data.location, bytes: saved.data.bytes, sha256: saved.data.sha256 } }
            : {}),
        };
      }),
    };
    for (const v of [...manifest.inputs, ...manifest.outputs]) tensors[v.name] = v;
    writeOutputFile(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    mkdirSync(out, { recursive: true });
    for (const f of readdirSync(out))
      if (/^stage-\d+\.onnx(\.data)?$/.test(f) || f === "manifest.json") rmSync(join(out, f));
    for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(out, f));
    return manifest;
  } catch (err) {
    const failedWrite =
      err instanceof CleaveError
        ? err.code === "FILE_UNWRITABLE"
        : typeof (err as { code?: unknown }).code === "string";
    throw failedWrite ? outputError(outDir, err) : err;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The manifest's `device`/`devices` fields for a stage's device or replica group. */
function stageDevicesField(
  given: string | readonly string[] | undefined,
  stage: number,
): { device?: string; devices?: string[] } {
  if (given === undefined) return {};
  if (typeof given === "string") return { device: given };
  if (given.length === 0)
    throw new ArgumentError(`devices[${stage}]: a replica group needs at least one device`, {
      field: `devices[${stage}]`,
      stage,
    });
  const twice = given.find((d, i) => given.indexOf(d) !== i);
  if (twice !== undefined)
    throw new ArgumentError(`devices[${stage}]: device '${twice}' is listed twice in the replica group`, {
      field: `devices[${stage}]`,
      stage,
      device: twice,
    });
  return given.length === 1 ? { device: given[0] } : { device: given[0], devices: [...given] };
}
