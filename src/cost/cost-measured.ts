import type { AnalyzedModel } from "../ir/analyze.js";
import type { NodeTimes } from "./node-times.js";
import { checkProfile, type Profile } from "./profile.js";

/**
 * Node times of a model on the device a profile was measured on: the per-node medians times the profile's
 * scale (see Profile.scale). Checks that the profile is for this model (and, when given, these input shapes);
 * `file` names the profile in errors.
 */
export function measuredTimes(
  model: AnalyzedModel,
  profile: Profile,
  opts: { file?: string; inputShapes?: Record<string, number[]> } = {},
): NodeTimes {
  checkProfile(profile, model.graph, opts.file ?? "profile", opts.inputShapes);
  const { graph } = model;
  const n = graph.nodes.length;
  const byName = new Map(graph.nodes.map((nd) => [nd.name, nd.index]));
  const latency = new Float64Array(n);
  const standalone = new Float64Array(n);
  const anchorOf = new Int32Array(n);
  const removed = new Set(profile.removed);
  const blockedNames = new Set(profile.blocked);
  const blocked = new Uint8Array(n);
  graph.nodes.forEach((node, i) => {
    const into = profile.fusedInto[node.name];
    if (into !== undefined) {
      anchorOf[i] = byName.get(into) ?? -1;
      standalone[i] = (profile.standalone[node.name] ?? 0) * profile.scale;
    } else if (removed.has(node.name) || node.isConstant) {
      anchorOf[i] = -1;
    } else {
      anchorOf[i] = i;
      latency[i] = (profile.latency[node.name] ?? 0) * profile.scale;
      if (blockedNames.has(node.name)) blocked[i] = 1;
    }
  });
  return { latency, standalone, anchorOf, blocked, overhead: { ...profile.overhead } };
}
