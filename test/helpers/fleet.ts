/**
 * Generated fleets of edge devices for planner tests and benchmarks: `size` devices cycling through `kinds` of
 * eight kinds (figures of the order of a Pi 4, a Jetson Nano, a phone SoC, a laptop, a Pi 5, a Jetson Orin
 * NX, a USB accelerator, a mini PC), every pair joined by its own gigabit link (a switch). "grouped": devices
 * of a kind are identical, so the planner groups them. "distinct": each device's MAC rate is perturbed
 * (+3.7% per index), so no two are interchangeable (the planner's worst case). Returned as a cluster file's
 * object (units as text), for `parseCluster` or to write out as YAML/JSON.
 */
const KINDS = [
  { kind: "cpu", gmacs: 13.5, bandwidth: "12.8GB/s", memory: "3GiB", idlePower: "2.7W", activePower: "6.4W" },
  { kind: "gpu", gmacs: 118, bandwidth: "25.6GB/s", memory: "3GiB", idlePower: "1.5W", activePower: "10W" },
  { kind: "cpu", gmacs: 50, bandwidth: "30GB/s", memory: "2GiB", idlePower: "1W", activePower: "4W" },
  { kind: "cpu", gmacs: 200, bandwidth: "40GB/s", memory: "8GiB", idlePower: "10W", activePower: "45W" },
  { kind: "cpu", gmacs: 17, bandwidth: "17GB/s", memory: "6GiB", idlePower: "3W", activePower: "8W" },
  { kind: "gpu", gmacs: 940, bandwidth: "102.4GB/s", memory: "14GiB", idlePower: "5W", activePower: "25W" },
  {
    kind: "accelerator",
    gmacs: 100,
    bandwidth: "8GB/s",
    memory: "1GiB",
    idlePower: "0.5W",
    activePower: "2W",
  },
  { kind: "cpu", gmacs: 300, bandwidth: "50GB/s", memory: "16GiB", idlePower: "8W", activePower: "35W" },
] as const;

/** Options of {@link fleetFile}. */
export interface FleetOptions {
  variant: "grouped" | "distinct";
  /** How many of the eight kinds to cycle through (default 8). */
  kinds?: number;
}

/** A cluster file object of `size` generated devices (see the file's comment). */
export function fleetFile(size: number, opts: FleetOptions) {
  const k = opts.kinds ?? KINDS.length;
  const devices = Array.from({ length: size }, (_, i) => {
    const kind = KINDS[i % k];
    const f = opts.variant === "distinct" ? 1 + 0.037 * i : 1;
    return {
      name: `d${i}`,
      kind: kind.kind,
      throughput: `${Math.round(kind.gmacs * f * 1e4) / 1e4} GMAC/s`,
      memoryBandwidth: kind.bandwidth,
      memory: kind.memory,
      idlePower: kind.idlePower,
      activePower: kind.activePower,
    };
  });
  const links = [];
  for (let a = 0; a < size; a++) {
    for (let b = a + 1; b < size; b++)
      links.push({
        devices: [`d${a}`, `d${b}`],
        kind: "ethernet",
        bandwidth: "1Gbit/s",
        latency: "100us",
        energyPerBit: "5nJ/bit",
      });
  }
  return { name: `${opts.variant}-${size}`, devices, links, inputDevice: "d0", outputDevice: "d0" };
}
