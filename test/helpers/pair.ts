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
