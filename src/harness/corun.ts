import type { Cluster, Device } from "../cluster/types.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { transferCpuPerByte } from "./bench-figures.js";
import {
  type DeployedSplit,
  deploySplit,
  type SplitMeasurement,
  wholeModel,
} from "../runtime/coordinator/run-split.js";

/** Host name given to emulated devices (those with `cpus`) that name none: they all run on this machine. */
export const THIS_HOST = "this-machine";

/** What {@link measureCoRun} found, per device: ms per request alone and beside the others, and the ratio. */
export interface CoRunMeasurement {
  model: string;
  requests: number;
  /** CPU time this process, the coordinator, used per whole-model request, ms (mean of the alone runs). */
  coordinatorCpuMs?: number;
  /**
   * Devices measured without the CPU quota they have (`cpuShare` below their threads): the co-run workers run
   * unquota'd, so their throughputs say nothing of the device.
   */
  withoutQuota?: string[];
  devices: Array<{
    name: string;
    /** onnxruntime time per request, alone and beside the others, ms. */
    aloneMs: number;
    togetherMs: number;
    factor: number;
    /**
     * The worker's CPU time outside onnxruntime per byte it received and sent, alone (frames, copies, the
     * kernel), s/byte: its process CPU time less the CPU time inside session.run ({@link transferCpuPerByte}).
     */
    transferCpu: number;
    /** Whole-model requests per second, alone and beside the others. */
    aloneThroughput: number;
    togetherThroughput: number;
  }>;
}

/**
 * Whole-model replicas on every measured device at once (data parallel, each device serving its own requests):
 * their summed throughput, and that over the best device alone. A reference for a pipeline on the same
 * devices, which moves less input per device than replicas do but pays for its cut.
 */
export function replicaReference(m: CoRunMeasurement): { throughput: number; overBestAlone: number } {
  const throughput = m.devices.reduce((s, d) => s + d.togetherThroughput, 0);
  const best = Math.max(...m.devices.map((d) => d.aloneThroughput));
  return { throughput, overBestAlone: best > 0 ? throughput / best : 0 };
}

/** Options of {@link measureCoRun}. */
export interface CoRunOptions {
  /** Measured requests per device and run, over all rounds (default 120). */
  requests?: number;
  /** Rounds of alone-then-together runs (default 3), so a drift of the machine's speed hits both alike. */
  rounds?: number;
  onStep?: (what: string) => void;
}

/**
 * Measures how much the emulated devices of one machine slow each other down: the whole model is deployed on
 * each device's pinned worker, and in each round runs on every device alone, then on all of them at once;
 * each device's onnxruntime time per request (the workers' own counters) alone and together is compared.
 * Two onnxruntime processes on the two vCPUs of this machine took 1.0-1.3x as long per inference as one alone
 * (1.5-1.7x on an earlier host), which a pipeline of devices on one host pays on every stage. The alone runs
 * also give each worker's CPU time outside onnxruntime per byte moved, and the coordinator's CPU per request.
 */
export async function measureCoRun(
  model: AnalyzedModel,
  cluster: Cluster,
  devices: readonly string[],
  opts: CoRunOptions = {},
): Promise<CoRunMeasurement> {
  const rounds = Math.max(1, opts.rounds ?? 3);
  const count = Math.max(1, Math.ceil((opts.requests ?? 120) / rounds));
  const whole = wholeModel(model);
  const alone: SplitMeasurement[][] = devices.map(() => []);
  const together: SplitMeasurement[][] = devices.map(() => []);
  const deployed: DeployedSplit[] = [];
  try {
    for (const name of devices) {
      opts.onStep?.(`co-run: deploying the whole model on ${name}`);
      // Two in flight keep each worker busy, so its counters cover back-to-back requests.
      deployed.push(await deploySplit(model, whole, [name], cluster, { inFlight: 2, verify: false }));
    }
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < devices.length; i++) {
        opts.onStep?.(`co-run ${r + 1}/${rounds}: ${devices[i]} alone`);
        alone[i].push(await deployed[i].measure(count));
      }
      opts.onStep?.(`co-run ${r + 1}/${rounds}: ${devices.join(" + ")} together`);
      const all = await Promise.all(deployed.map((d) => d.measure(count)));
      for (const [i, m] of all.entries()) together[i].push(m);
    }
  } finally {
    for (const d of deployed) await d.close();
  }
  const mean = (ms: SplitMeasurement[], f: (m: SplitMeasurement) => number) =>
    ms.reduce((s, m) => s + f(m), 0) / ms.length;
  return {
    model: model.graph.source,
    requests: count * rounds,
    coordinatorCpuMs: mean(alone.flat(), (m) => m.coordinatorCpuMs),
    devices: devices.map((name, i) => {
      const a = mean(alone[i], (m) => m.stageBusyMs[name]);
      const t = mean(together[i], (m) => m.stageBusyMs[name]);
      const cpu = mean(alone[i], (m) => m.stageCpuMs[name]);
      const ortCpu = mean(alone[i], (m) => m.stageOrtCpuMs[name]);
      const bytes = mean(alone[i], (m) => m.bytesPerRequest);
      return {
        name,
        aloneMs: a,
        togetherMs: t,
        factor: Math.max(1, t / a),
        transferCpu: transferCpuPerByte(cpu, ortCpu, bytes),
        aloneThroughput: mean(alone[i], (m) => m.report.throughput),
        togetherThroughput: mean(together[i], (m) => m.report.throughput),
      };
    }),
  };
}

/** Share of a core per onnxruntime thread a device's CPU quota leaves it (1 without a quota below its threads). */
export function busyShare(d: Device): number {
  return Math.min(1, (d.cpuShare ?? Number.POSITIVE_INFINITY) / (d.threads ?? d.cpus?.length ?? 1));
}

/**
 * Measures the co-run slowdown, transfer CPU and coordinator CPU of the devices of `cluster` emulated on this
 * machine (with `cpus`) and returns the cluster with them set ({@link withCoRun}) and `profiles` calibrated to
 * the devices' measured speed ({@link calibratedProfiles}); everything as it is, and no measurement, when
 * fewer than two devices are emulated here.
 */
export async function withMeasuredCoRun(
  model: AnalyzedModel,
  cluster: Cluster,
  profiles: Readonly<Record<string, Profile>>,
  opts: CoRunOptions = {},
): Promise<{ cluster: Cluster; profiles: Record<string, Profile>; coRun?: CoRunMeasurement }> {
  const emulated = cluster.devices.filter((d) => d.cpus !== undefined);
  if (emulated.length < 2) return { cluster, profiles: { ...profiles } };
  const coRun = await measureCoRun(
    model,
    cluster,
    emulated.map((d) => d.name),
    opts,
  );
  const quota = emulated.filter((d) => busyShare(d) < 1).map((d) => d.name);
  if (quota.length > 0) coRun.withoutQuota = quota;
  return {
    cluster: withCoRun(cluster, coRun),
    profiles: calibratedProfiles(profiles, cluster, coRun),
    coRun,
  };
}

/**
 * The cluster with the measured co-run factors and transfer CPU times set on its emulated devices (replacing
 * declared ones; host {@link THIS_HOST} unless they name one). A device capped below a full core (`cpuShare`
 * under its thread count) keeps the others busy only part of the time, so the slowdown it causes is scaled by
 * its share: factor = 1 + (measured - 1) x the largest busy share among the other devices; its transfer CPU
 * takes 1 / cpuShare as long (the co-run workers run without the quota). The coordinator's
 * measured CPU per request is split over the devices (`coordinatorCpu`) when all of them keep a core busy.
 */
export function withCoRun(cluster: Cluster, m: CoRunMeasurement): Cluster {
  const measured = new Map(m.devices.map((x) => [x.name, x]));
  const emulated = cluster.devices.filter((d) => measured.has(d.name));
  // The coordinator runs on this machine too. When every emulated device keeps a whole core busy it can only
  // run in their time, a share each; a device under a quota leaves idle time on its core for it instead.
  const coordinatorShare =
    emulated.length > 1 && emulated.every((d) => busyShare(d) >= 1)
      ? (m.coordinatorCpuMs ?? 0) / 1000 / emulated.length
      : 0;
  return {
    ...cluster,
    devices: cluster.devices.map((d): Device => {
      const x = measured.get(d.name);
      if (x === undefined) return d;
      const others = Math.max(0, ...emulated.filter((e) => e !== d).map(busyShare));
      return {
        ...d,
        host: d.host ?? THIS_HOST,
        coRunSlowdown: 1 + (x.factor - 1) * others,
        // Measured without the device's quota; under it, the worker's one I/O thread gets cpuShare of a core.
        transferCpu: x.transferCpu / Math.min(1, d.cpuShare ?? 1),
        ...(coordinatorShare > 0 ? { coordinatorCpu: coordinatorShare } : {}),
      };
    }),
  };
}

/**
 * Profiles of the measured devices rescaled to the speed their pinned worker showed alone in the co-run
 * measurement, moments before the plan is made: times x (onnxruntime time per request alone / the profile's
 * whole-model run). The vCPUs of a shared VM differ in speed and drift (this machine's two measured 8.1 and
 * 11.0 ms for the same model minutes apart), so a profile taken once prices the devices as of when it was
 * taken. Devices under a CPU quota (`cpuShare` below their thread count) are left as they are: the co-run
 * workers run them without their quota.
 */
export function calibratedProfiles(
  profiles: Readonly<Record<string, Profile>>,
  cluster: Cluster,
  m: CoRunMeasurement,
): Record<string, Profile> {
  const out: Record<string, Profile> = { ...profiles };
  for (const x of m.devices) {
    const p = profiles[x.name];
    const d = cluster.devices.find((e) => e.name === x.name);
    if (!p || !d || p.wholeRun <= 0 || !(x.aloneMs > 0) || busyShare(d) < 1) continue;
    const factor = x.aloneMs / 1000 / p.wholeRun;
    out[x.name] = scaleProfile(
      p,
      factor,
      `calibrated to ${x.name}'s pinned worker, ${x.aloneMs.toFixed(2)} ms alone`,
    );
  }
  return out;
}
