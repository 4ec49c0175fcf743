import type { Cluster, Device } from "../cluster/types.js";
import { cachedProfile } from "../cost/profile-cache.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { CliIO } from "./command.js";
import { fmtTime } from "./format.js";
import type { Progress } from "./progress.js";

/**
 * The profile a device emulated here gets from `measured`, a profile of this machine at `threads` onnxruntime
 * threads: undefined when the device runs another number of threads; as measured when its `cpuShare` gives
 * each thread a core; else with every time multiplied by threads / cpuShare (a cgroup quota of 0.25 core
 * stretches a one-thread run 4x on average).
 */
export function emulatedProfile(d: Device, measured: Profile, threads: number): Profile | undefined {
  if ((d.threads ?? d.cpus?.length ?? 1) !== threads) return undefined;
  const share = d.cpuShare ?? threads;
  if (share >= threads) return measured;
  return scaleProfile(
    measured,
    threads / share,
    `scaled from the local measurement by the CPU quota of ${d.name}, cpuShare ${share} for ${threads} thread(s)`,
  );
}

/**
 * Profiles for the devices of `cluster` emulated on this machine (with `cpus`) that have none (neither in the
 * cluster file nor in `given`): measured with onnxruntime on this machine once per machine, model and thread
 * count and cached ({@link cachedProfile}), so they are priced from what this machine does rather than from
 * the nominal MAC rates of the cluster file. Says in one line on stderr where the figures come from. Returns
 * `given` with those profiles added.
 */
export async function withLocalProfiles(
  model: AnalyzedModel,
  cluster: Cluster,
  given: Readonly<Record<string, Profile>>,
  io: CliIO,
  bar?: Progress,
): Promise<Record<string, Profile>> {
  const out: Record<string, Profile> = { ...given };
  const emulated = cluster.devices.filter(
    (d) => d.cpus !== undefined && d.profile === undefined && out[d.name] === undefined,
  );
  const byThreads = new Map<number, Device[]>();
  for (const d of emulated) {
    const t = d.threads ?? d.cpus?.length ?? 1;
    byThreads.set(t, [...(byThreads.get(t) ?? []), d]);
  }
  for (const [threads, devices] of byThreads) {
    const t0 = performance.now();
    const c = await cachedProfile(model, {
      threads,
      onProgress: (p) => bar?.fraction(p.done / Math.max(1, p.total), `profiling ${p.phase}`),
    });
    bar?.done();
    for (const d of devices) {
      const p = emulatedProfile(d, c.profile, threads);
      if (p) out[d.name] = p;
    }
    const names = devices.map((d) => d.name).join(", ");
    const what = `${model.graph.source} at ${threads} thread(s), ${fmtTime(c.profile.wholeRun)} per inference`;
    io.err(
      c.fromCache
        ? `cleave: ${names} priced from this machine's cached profile of ${what} (${c.path})`
        : `cleave: ${names} priced from a profile of ${what} measured now on this machine in ${fmtTime((performance.now() - t0) / 1000)}` +
            (c.writeError === undefined ? `, cached in ${c.path}` : ` (not cached: ${c.writeError})`),
    );
  }
  return out;
}
