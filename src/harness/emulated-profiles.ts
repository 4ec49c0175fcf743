import type { Cluster, Device } from "../cluster/types.js";
import { cachedProfile } from "../cost/profile-cache.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { type CoRunMeasurement, withMeasuredCoRun } from "./corun.js";

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

/** Where the profiles of some emulated devices came from (one per thread count), for a line to the user. */
export interface LocalProfileNote {
  /** The devices priced from this profile. */
  devices: string[];
  /** The model's source path, as profiled. */
  source: string;
  threads: number;
  /** The profile's time per inference, s. */
  wholeRun: number;
  fromCache: boolean;
  /** The cache file (read, or written unless `writeError`). */
  path: string;
  /** Time taken to get the profile (measuring it, or reading the cache), s. */
  seconds: number;
  /** Why the new profile could not be cached. */
  writeError?: string;
}

/** Options of {@link withLocalProfiles} and {@link emulatedCosts}. */
export interface EmulatedProfileOptions {
  /** Called once per thread count profiled, with where the figures came from. */
  onProfile?: (note: LocalProfileNote) => void;
  /** Fraction of the current profiling done, 0..1, and its phase. */
  onFraction?: (done: number, what: string) => void;
  /** Called when a profiling step ends. */
  onStepDone?: () => void;
  /** A step of the co-run measurement starts. */
  onStep?: (what: string) => void;
}

/**
 * Profiles for the devices of `cluster` emulated on this machine (with `cpus`) that have none (neither in the
 * cluster file nor in `given`): measured with onnxruntime on this machine once per machine, model and thread
 * count and cached ({@link cachedProfile}), so they are priced from what this machine does rather than from
 * the nominal MAC rates of the cluster file. Returns `given` with those profiles added.
 */
export async function withLocalProfiles(
  model: AnalyzedModel,
  cluster: Cluster,
  given: Readonly<Record<string, Profile>>,
  opts: EmulatedProfileOptions = {},
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
      onProgress: (p) => opts.onFraction?.(p.done / Math.max(1, p.total), `profiling ${p.phase}`),
    });
    opts.onStepDone?.();
    for (const d of devices) {
      const p = emulatedProfile(d, c.profile, threads);
      if (p) out[d.name] = p;
    }
    opts.onProfile?.({
      devices: devices.map((d) => d.name),
      source: model.graph.source,
      threads,
      wholeRun: c.profile.wholeRun,
      fromCache: c.fromCache,
      path: c.path,
      seconds: (performance.now() - t0) / 1000,
      ...(c.writeError !== undefined ? { writeError: c.writeError } : {}),
    });
  }
  return out;
}

/** What planning on emulated devices starts from: the cluster with measured co-run figures, and profiles. */
export interface EmulatedCosts {
  /** The cluster with the co-run slowdown, transfer and coordinator CPU measured here (when measured). */
  cluster: Cluster;
  /** Every device's profile: given, measured on this machine, calibrated by the co-run measurement. */
  profiles: Record<string, Profile>;
  /** The profiles before the co-run calibration: given, and measured on this machine. */
  local: Record<string, Profile>;
  /** The co-run measurement (absent when skipped or when fewer than two devices are emulated here). */
  coRun?: CoRunMeasurement;
}

/**
 * The profiling of emulated devices that a bench and the demo do before planning: profiles for the emulated
 * devices without one ({@link withLocalProfiles}), then, unless `coRun` is false, the co-run measurement that
 * prices how they slow each other down and calibrates their profiles ({@link withMeasuredCoRun}).
 */
export async function emulatedCosts(
  model: AnalyzedModel,
  declared: Cluster,
  given: Readonly<Record<string, Profile>>,
  opts: EmulatedProfileOptions & { coRun?: boolean } = {},
): Promise<EmulatedCosts> {
  const local = await withLocalProfiles(model, declared, given, opts);
  if (opts.coRun === false) return { cluster: declared, profiles: local, local };
  return { ...(await withMeasuredCoRun(model, declared, local, { onStep: opts.onStep })), local };
}
