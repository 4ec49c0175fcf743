import type { Manifest, ManifestStage } from "../../export/manifest.js";
import { RuntimeFault } from "../../errors.js";

/** The devices a manifest stage names: its replica group, else its device. */
function groupOf(s: ManifestStage): string[] {
  return s.devices !== undefined && s.devices.length > 0
    ? s.devices
    : s.device !== undefined
      ? [s.device]
      : [];
}

/**
 * The same stages over the devices left: every replica on a lost device is dropped, and a stage whose devices
 * are all lost goes to the device left with the fewest MACs assigned so far (ties: the device of the nearest
 * earlier stage, so a merged stage sits beside its input). The stage files are unchanged, so a worker that
 * held a stage before loads it from its cache, and with every device back this is `manifest` itself.
 * Throws a RuntimeFault when no device is left. A re-plan without a planner or cost model: the control loop's
 * default.
 */
export function reassignStages(manifest: Manifest, alive: readonly string[]): Manifest {
  const left = new Set(alive);
  if (left.size === 0)
    throw new RuntimeFault("WORKER", "no feasible plan remains: every device of the deployment is lost");
  const macs = new Map<string, number>([...left].map((d) => [d, 0]));
  const groups = manifest.stages.map((s) => groupOf(s).filter((d) => left.has(d)));
  groups.forEach((g, i) => {
    for (const d of g) macs.set(d, (macs.get(d) ?? 0) + manifest.stages[i].macs / g.length);
  });
  const stages = manifest.stages.map((s, i) => {
    let g = groups[i];
    if (g.length === 0) {
      const near = groups
        .slice(0, i)
        .reverse()
        .find((x) => x.length > 0)?.[0];
      const pick = [...left].sort(
        (a, b) => (macs.get(a) ?? 0) - (macs.get(b) ?? 0) || Number(b === near) - Number(a === near),
      )[0];
      g = [pick];
      groups[i] = g;
      macs.set(pick, (macs.get(pick) ?? 0) + s.macs);
    }
    const { devices: _d, device: _e, ...rest } = s;
    return g.length > 1 ? { ...rest, device: g[0], devices: g } : { ...rest, device: g[0] };
  });
  return { ...manifest, stages };
}
