import type { DType } from "../onnx/dtype.js";

/** Kinds of device a cluster can hold. */
export type DeviceKind = "cpu" | "gpu" | "npu" | "accelerator" | "browser";

/** Kinds of link between devices. */
export type LinkKind = "ethernet" | "wifi" | "ble" | "usb" | "chiplet" | "loopback";

/** A group of identical cores inside a device (e.g. 4 big cores), each cluster with its own throughput. */
export interface CoreCluster {
  name: string;
  cores: number;
  /** Compute throughput of the whole core cluster, MAC/s (float32). */
  macsPerSecond: number;
  /** Active power of the core cluster when busy, W. */
  activePower?: number;
}

/** One device of a cluster, all figures in SI base units (MAC/s, bytes/s, bytes, W, s). */
export interface Device {
  name: string;
  kind: DeviceKind;
  /** Compute throughput by data type, MAC/s. `float32` is always present. */
  macsPerSecond: Partial<Record<DType, number>> & { float32: number };
  /** Memory bandwidth, bytes/s. */
  memoryBandwidth: number;
  /** Memory available to the model (weights + activations + runtime), bytes. */
  memory: number;
  /** Power when idle and when busy, W. */
  idlePower: number;
  activePower: number;
  /** Core clusters inside the device, for hierarchical planning. */
  coreClusters?: CoreCluster[];
  /** Path of a measured profile (from `cleave profile`), resolved relative to the cluster file. */
  profile?: string;
  /** `host:port` of the device's worker for the runtime. */
  endpoint?: string;
  /** For emulated devices: the CPUs this device's worker may use (taskset list), and its CPU share (1 = one full core). */
  cpus?: number[];
  cpuShare?: number;
  /** onnxruntime intra-op threads for this device's worker. */
  threads?: number;
  /**
   * Physical machine the device shares with other devices of the cluster (emulated devices on one host, or
   * core groups of one board run as separate devices). Devices with the same host slow each other down when
   * they compute at the same time, as stages of a pipeline do.
   */
  host?: string;
  /**
   * How much longer this device's compute takes while another device of its `host` computes at the same time
   * (shared caches, memory bandwidth, SMT siblings), >= 1. Applied to pipelined throughput only.
   */
  coRunSlowdown?: number;
  /**
   * CPU time the device spends per byte it receives or sends (kernel copies, framing), s/byte. It takes the
   * device from its own compute in a pipeline, so it adds to the stage's period. Pipelined throughput only.
   */
  transferCpu?: number;
  /**
   * CPU time per inference the coordinator (the client sending inputs and taking outputs), running on this
   * device's `host`, takes from this device while the device computes beside another of its host, s. When
   * every core of a host runs a stage the coordinator can only run in their time. Pipelined throughput only.
   */
  coordinatorCpu?: number;
}

/** A link between two devices (both directions), or a shared medium when `devices` lists more than two. */
export interface Link {
  /** The devices joined by the link (two for point-to-point, more for a shared medium such as Wi-Fi). */
  devices: string[];
  kind: LinkKind;
  /** Bandwidth, bytes/s. */
  bandwidth: number;
  /** One-way latency, s. */
  latency: number;
  /** Energy per bit sent, J/bit. */
  energyPerBit: number;
}

/** A set of devices and links, with where the input lives and who needs the output. */
export interface Cluster {
  name: string;
  devices: Device[];
  links: Link[];
  /** Device that holds the model's input. */
  inputDevice: string;
  /** Device that needs the model's output. */
  outputDevice: string;
  /** Path of the file it was loaded from, when any. */
  source?: string;
  /** The file's `constraints:` section, passed through unvalidated for the planner to interpret. */
  constraints?: Record<string, unknown>;
}
