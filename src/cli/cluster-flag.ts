import { loadCluster } from "../cluster/load.js";
import type { Cluster } from "../cluster/types.js";
import { localClusterPath } from "./load.js";

/** The cluster of --cluster, or the shipped local cluster (two pinned one-core devices) by default. */
export function clusterFromFlags(path: string | undefined): Cluster {
  return loadCluster(path ?? localClusterPath());
}
