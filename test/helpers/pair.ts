import { parseCluster } from "../../src/cluster/load.js";
import type { Cluster } from "../../src/cluster/types.js";

/** Two equal one-core devices a (holding the input) and b (wanting the output), joined by Ethernet. */
export function equalPair(bandwidth: string, name = `pair-${bandwidth}`): Cluster {
  return parseCluster(
    {
      name,
      inputDevice: "a",
      outputDevice: "b",
      devices: ["a", "b"].map((device) => ({
        name: device,
        kind: "cpu",
        throughput: "52 GMAC/s",
        memoryBandwidth: "20GB/s",
        memory: "4GiB",
        idlePower: "1W",
        activePower: "3W",
      })),
      links: [
        { devices: ["a", "b"], kind: "ethernet", bandwidth, latency: "0.1ms", energyPerBit: "0.5nJ/bit" },
      ],
    },
    "pair",
  );
}

/**
 * A camera-and-server cluster file as YAML text (the tests write it where a command reads a cluster path): a
 * camera of an eighth of a core (`cpuShare`, unless `share` is false) holding the input on cpu 1, a server of
 * one core on cpu 0 wanting the output, joined by a wireless-like link of `bandwidth`.
 */
export function cameraServerYaml(name: string, bandwidth: string, share = true): string {
  return `name: ${name}
inputDevice: camera
outputDevice: server
devices:
  - name: camera
    kind: cpu
    throughput: 6.5 GMAC/s
    memoryBandwidth: 2.5GB/s
    memory: 1GiB
    idlePower: 0.125W
    activePower: 0.375W
    cpus: [1]
${share ? "    cpuShare: 0.125\n" : ""}    threads: 1
  - name: server
    kind: cpu
    throughput: 52 GMAC/s
    memoryBandwidth: 20GB/s
    memory: 4GiB
    idlePower: 1W
    activePower: 3W
    cpus: [0]
    threads: 1
links:
  - devices: [camera, server]
    kind: wifi
    bandwidth: ${bandwidth}
    latency: 2ms
    energyPerBit: 50nJ/bit
`;
}
