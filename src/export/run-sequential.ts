import { join } from "node:path";
import { encodeModel } from "../onnx/model-io.js";
import { createSession, type ort, type SessionOptions } from "../onnx/ort.js";
import { readManifest } from "./manifest-io.js";
import type { StageModel } from "./stage.js";

interface RunnerStage {
  inputs: readonly string[];
  outputs: readonly string[];
  session: ort.InferenceSession;
}

/**
 * Runs a split model stage after stage in one process: the reference the distributed runtime is checked
 * against. Tensors produced by a stage are kept until the last stage that reads them has run.
 */
export class SequentialRunner {
  private constructor(
    private readonly stages: RunnerStage[],
    /** Names of the model outputs, in model order. */
    readonly outputs: readonly string[],
  ) {}

  /** Opens one onnxruntime session per stage of the split written in `dir`. */
  static async open(
    dir: string,
    opts: Pick<SessionOptions, "threads" | "optimization"> = {},
  ): Promise<SequentialRunner> {
    const { manifest, dir: base } = readManifest(dir);
    const stages: RunnerStage[] = [];
    for (const st of manifest.stages) {
      const file = join(base, st.file);
      // Opened by path: a stage with external data reads its weights from the file beside it.
      const session = await createSession(file, { ...opts, source: file });
      stages.push({ inputs: st.inputs, outputs: st.outputs, session });
    }
    return new SequentialRunner(
      stages,
      manifest.outputs.map((o) => o.name),
    );
  }

  /** Opens sessions on stage models held in memory (no files written). */
  static async fromStages(
    stages: readonly StageModel[],
    outputs: readonly string[],
    opts: Pick<SessionOptions, "threads" | "optimization"> = {},
  ): Promise<SequentialRunner> {
    const open: RunnerStage[] = [];
    for (const st of stages) {
      const session = await createSession(encodeModel(st.model), {
        ...opts,
        source: `stage ${st.index}`,
      });
      open.push({ inputs: st.inputs, outputs: st.outputs, session });
    }
    return new SequentialRunner(open, outputs);
  }

  /** Runs every stage in order on `feeds` (model inputs by name) and returns the model outputs by name. */
  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const store = new Map<string, ort.Tensor>(Object.entries(feeds));
    for (const st of this.stages) {
      const stageFeeds: Record<string, ort.Tensor> = {};
      for (const name of st.inputs) stageFeeds[name] = store.get(name)!;
      const out = await st.session.run(stageFeeds);
      for (const name of st.outputs) store.set(name, out[name]);
    }
    const result: Record<string, ort.Tensor> = {};
    for (const name of this.outputs) result[name] = store.get(name)!;
    return result;
  }

  /** Releases the sessions. */
  async close(): Promise<void> {
    for (const s of this.stages) await s.session.release();
  }
}
