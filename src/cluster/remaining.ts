import type { Cluster } from "./types.js";

/**
 * The cluster that remains: the devices in `alive`, the links among them (a shared medium keeps the devices
 * left on it, when two or more are), and the input or output device moved to the first device left when it
 * was lost. Throws a RangeError when no device of the cluster is left.
 */
export function remainingCluster(cluster: Cluster, alive: readonly string[]): Cluster {
  const left = new Set(alive);
  const devices = cluster.devices.filter((d) => left.has(d.name));
  if (devices.length === 0)
    throw new RangeError(
      `no device of cluster ${cluster.name} is left (alive: ${alive.join(", ") || "none"})`,
    );
  const links = cluster.links.flatMap((l) => {
    const ds = l.devices.filter((d) => left.has(d));
    return ds.length >= 2 ? [{ ...l, devices: ds }] : [];
  });
  const keep = (d: string) => (left.has(d) ? d : devices[0].name);
  return {
    ...cluster,
    name: `${cluster.name} without ${cluster.devices
      .filter((d) => !left.has(d.name))
      .map((d) => d.name)
      .join(", ")}`,
    devices,
    links,
    inputDevice: keep(cluster.inputDevice),
    outputDevice: keep(cluster.outputDevice),
  };
}
