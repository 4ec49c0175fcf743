import type { AnalyzedModel } from "../../ir/analyze.js";
import { createSession, type ort } from "../../onnx/ort.js";
import type { Tensors } from "./pipeline.js";

/**
 * Compares a deployment's outputs with a reference model's (the unsplit model a tiled or branch-parallel plan
 * was made from) on the same inputs: the reference runs once in this process, and every request's outputs
 * are checked against it. The running figure is the largest |difference| over the reference's float outputs,
 * relative to the largest output magnitude (as for the first-request check).
 */
export class ReferenceCheck {
  private max = 0;
  private count = 0;
  private missing: string | undefined;

  private constructor(private readonly want: Record<string, ort.Tensor>) {}

  /** Runs `reference` once on `feeds` (requests all send those) and keeps its outputs. */
  static async create(reference: AnalyzedModel, feeds: Tensors): Promise<ReferenceCheck> {
    const session = await createSession(reference.graph.model);
    try {
      const inputs = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
      return new ReferenceCheck((await session.run(inputs)) as Record<string, ort.Tensor>);
    } finally {
      await session.release();
    }
  }

  /** Checks one request's outputs; returns its relative difference (Infinity when an output is missing). */
  add(got: Tensors): number {
    let diff = 0;
    let scale = 0;
    for (const [name, w] of Object.entries(this.want)) {
      const g = got[name];
      if (!g || g.dims.length !== w.dims.length || g.data.length !== w.data.length) {
        this.missing ??= name;
        diff = Number.POSITIVE_INFINITY;
        continue;
      }
      if (w.type !== "float32") continue;
      const a = w.data as Float32Array;
      const b = g.data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(a[i]));
      }
    }
    const rel = scale > 0 && Number.isFinite(diff) ? diff / scale : diff;
    this.max = Math.max(this.max, rel);
    this.count++;
    return rel;
  }

  /** Largest relative difference over the requests checked so far. */
  get maxRelativeDiff(): number {
    return this.max;
  }

  /** Requests checked so far. */
  get checked(): number {
    return this.count;
  }

  /** The first reference output a request lacked (or had of another size), if any. */
  get missingOutput(): string | undefined {
    return this.missing;
  }
}
