import type { Cluster, Device, Link } from "../cluster/types.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { analyticTimes, calibrateAnalytic } from "./cost-analytic.js";
import { measuredTimes } from "./cost-measured.js";
import type { CostModel } from "./cost-model.js";
import { type DeviceRatio, scaleTimesByClass } from "./cost-scaled.js";
import { type NodeTimes, scaleTimes, segmentTime } from "./node-times.js";
import { loadProfile, type Profile } from "./profile.js";
import { segmentMemory } from "./segment.js";
import { type SegmentSweeps, segmentTimeSweeps } from "./segment-sweep.js";

/** How a device's times were obtained. */
export type CostSource =
  /** Its own profile. */
  | "measured"
  /** Another device's profile, scaled by a calibrated ratio per operator class or by nominal float32 MAC rates. */
  | "scaled"
  /** Roofline from its throughput and bandwidth, calibrated from another device's profile when there is one. */
  | "analytic";

/**
 * Memory a stage needs beyond weights and activations, bytes, by device kind. Measured on this machine: a
 * bare Node.js process has 39 MiB resident, loading onnxruntime-node and opening and running a first session
 * adds 26 MiB (further sessions ~0.2 MiB each), so a cleave worker needs ~65 MiB. Accelerators and NPUs
 * run without an OS process here: 0. (onnxruntime may also keep a pre-packed copy of Conv/Gemm weights:
 * resnet18's 45 MiB of weights took 171 MiB of session memory; that is not modelled.)
 */
export const RUNTIME_MEMORY: Readonly<Record<Device["kind"], number>> = {
  cpu: 65 * 2 ** 20,
  gpu: 65 * 2 ** 20,
  browser: 65 * 2 ** 20,
  npu: 0,
  accelerator: 0,
};

/** Options for {@link costModelFor}. */
export interface CostModelOptions {
  /** Profiles by device name; they take precedence over the devices' `profile` files. */
  profiles?: Record<string, Profile>;
  /** Force how devices are priced, by device name ("measured" needs a profile for that device). */
  mode?: Record<string, CostSource>;
  /** Input shapes the model was analysed at; profiles measured at other shapes are rejected. */
  inputShapes?: Record<string, number[]>;
  /**
   * Calibrated speed ratios by device name (from profiles of a calibration model on both devices, see
   * calibrateRatio): such a device without its own profile is priced from its reference device's profile
   * scaled per operator class, instead of by nominal MAC rates.
   */
  ratios?: Record<string, DeviceRatio>;
}

interface DeviceCosts {
  source: CostSource;
  /** Device whose profile the times come from (for scaled and calibrated analytic devices). */
  reference?: string;
  times: NodeTimes;
  nodeLatencies: Float64Array;
}

/**
 * The cost model of one analysed model on the devices of a cluster: each device is priced from its own
 * profile (measured), from a profiled device of the same kind scaled by MAC rates (scaled), or by the
 * roofline calibrated from a profiled device (analytic); see {@link costModelFor}.
 */
export class ClusterCostModel implements CostModel {
  /** Per device object (a planner may price variants of a device, e.g. one core cluster, under their own names). */
  private readonly byDevice = new WeakMap<Device, DeviceCosts>();

  constructor(
    readonly model: AnalyzedModel,
    readonly cluster: Cluster,
    private readonly profiles: ReadonlyMap<string, { profile: Profile; file: string }>,
    private readonly opts: CostModelOptions = {},
  ) {}

  /** How a device is priced and from which device's profile. */
  describe(device: Device): { source: CostSource; reference?: string } {
    const c = this.costs(device);
    return c.reference !== undefined ? { source: c.source, reference: c.reference } : { source: c.source };
  }

  /** The node times behind a device's answers. */
  nodeTimes(device: Device): NodeTimes {
    return this.costs(device).times;
  }

  nodeLatencies(device: Device): Float64Array {
    return this.costs(device).nodeLatencies;
  }

  segmentLatency(device: Device, nodes: readonly number[]): number {
    if (nodes.length === 0) return 0;
    return segmentTime(this.model, this.costs(device).times, nodes);
  }

  segmentLatencySweeps(device: Device, nodes: readonly number[]): SegmentSweeps {
    return segmentTimeSweeps(this.model, this.costs(device).times, nodes);
  }

  segmentEnergy(device: Device, nodes: readonly number[]): number {
    return device.activePower * this.segmentLatency(device, nodes);
  }

  segmentMemory(device: Device, nodes: readonly number[]): number {
    const m = segmentMemory(this.model, nodes);
    return m.weights + m.activations + RUNTIME_MEMORY[device.kind];
  }

  /** Segment memory depends on the device only through its runtime overhead. */
  memoryKey(device: Device): string {
    return `runtime:${RUNTIME_MEMORY[device.kind]}`;
  }

  transfer(link: Link, bytes: number): { time: number; energy: number } {
    return { time: link.latency + bytes / link.bandwidth, energy: bytes * 8 * link.energyPerBit };
  }

  private costs(device: Device): DeviceCosts {
    const known = this.byDevice.get(device);
    if (known) return known;
    const c = this.build(device);
    this.byDevice.set(device, c);
    return c;
  }

  private measured(name: string): NodeTimes {
    const p = this.profiles.get(name)!;
    return measuredTimes(this.model, p.profile, { file: p.file, inputShapes: this.opts.inputShapes });
  }

  private build(device: Device): DeviceCosts {
    const forced = this.opts.mode?.[device.name];
    const own = this.profiles.has(device.name);
    if (forced === "measured" && !own) {
      throw new ArgumentError(
        `device '${device.name}' has no profile to price it from (give it a profile: file or drop the measured mode)`,
        { device: device.name },
        "BAD_CONFIG",
      );
    }
    if (own && (forced === undefined || forced === "measured")) {
      return withLatencies({ source: "measured", times: this.measured(device.name) });
    }
    const ratio = this.opts.ratios?.[device.name];
    if (ratio && (forced === undefined || forced === "scaled")) {
      if (!this.profiles.has(ratio.reference)) {
        throw new ArgumentError(
          `device '${device.name}': its speed ratio is relative to '${ratio.reference}', which has no profile`,
          { device: device.name },
          "BAD_CONFIG",
        );
      }
      return withLatencies({
        source: "scaled",
        reference: ratio.reference,
        times: scaleTimesByClass(this.model, this.measured(ratio.reference), ratio),
      });
    }
    const ref = this.reference(device);
    const source: CostSource =
      forced ?? (ref && ref.kind === "cpu" && device.kind === "cpu" ? "scaled" : "analytic");
    if (source === "scaled") {
      if (!ref) {
        throw new ArgumentError(
          `device '${device.name}': no profiled device to scale from`,
          { device: device.name },
          "BAD_CONFIG",
        );
      }
      const factor = ref.macsPerSecond.float32 / device.macsPerSecond.float32;
      return withLatencies({
        source,
        reference: ref.name,
        times: scaleTimes(this.measured(ref.name), factor),
      });
    }
    if (!ref) return withLatencies({ source: "analytic", times: analyticTimes(this.model, device) });
    const calibration = calibrateAnalytic(this.model, this.measured(ref.name), ref);
    return withLatencies({
      source: "analytic",
      reference: ref.name,
      times: analyticTimes(this.model, device, calibration),
    });
  }

  /** A profiled device to take times from: the same kind first, then any, in cluster order. */
  private reference(device: Device): Device | undefined {
    const profiled = this.cluster.devices.filter((d) => this.profiles.has(d.name) && d.name !== device.name);
    return profiled.find((d) => d.kind === device.kind) ?? profiled[0];
  }
}

function withLatencies(c: Omit<DeviceCosts, "nodeLatencies">): DeviceCosts {
  return { ...c, nodeLatencies: c.times.latency };
}

/**
 * The cost model of `model` on `cluster`, picking per device: its own profile (`opts.profiles[name]` or the
 * device's `profile` file) -> measured; else, for a CPU when another CPU is profiled -> that profile scaled by
 * the ratio of nominal float32 MAC rates; else -> analytic roofline, calibrated from a profiled device when
 * there is one (uncalibrated defaults otherwise). `opts.mode` forces a choice per device. Profiles are checked
 * to be of this model; a mismatch throws an error naming the profile file.
 */
export function costModelFor(
  model: AnalyzedModel,
  cluster: Cluster,
  opts: CostModelOptions = {},
): ClusterCostModel {
  const profiles = new Map<string, { profile: Profile; file: string }>();
  for (const d of cluster.devices) {
    const given = opts.profiles?.[d.name];
    if (given) profiles.set(d.name, { profile: given, file: d.profile ?? `profile of ${d.name}` });
    else if (d.profile !== undefined)
      profiles.set(d.name, { profile: loadProfile(d.profile), file: d.profile });
  }
  for (const name of Object.keys(opts.profiles ?? {})) {
    if (!cluster.devices.some((d) => d.name === name)) {
      throw new ArgumentError(
        `profile given for unknown device '${name}' (devices: ${cluster.devices.map((d) => d.name).join(", ")})`,
        { device: name },
        "BAD_CONFIG",
      );
    }
  }
  return new ClusterCostModel(model, cluster, profiles, opts);
}
