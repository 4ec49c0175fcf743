import { existsSync, readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCluster } from "../cluster/load.js";
import type { Cluster } from "../cluster/types.js";
import { ArgumentError } from "../errors.js";

const CLUSTER_EXTENSIONS = [".yaml", ".yml", ".json"];

/** Folder of the cluster descriptions shipped with cleave (`examples/clusters/`). */
export function shippedClustersDir(): string {
  return fileURLToPath(new URL("../../../examples/clusters/", import.meta.url));
}

/** Names of the shipped clusters (file names without extension), sorted: what `--cluster NAME` accepts. */
export function shippedClusterNames(): string[] {
  const dir = shippedClustersDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => CLUSTER_EXTENSIONS.includes(extname(f).toLowerCase()))
    .map((f) => f.slice(0, -extname(f).length))
    .sort();
}

/**
 * The file a `--cluster` value names: an existing file as given, else a shipped cluster by name (`local`,
 * `pi4-pair`, ...). A value that looks like a name (no folder, no .yaml/.json) and is no shipped cluster is an
 * ArgumentError listing the names; any other value is returned as a path for {@link loadCluster} to report.
 */
export function resolveClusterSpec(spec: string): string {
  if (existsSync(spec) && !statSync(spec).isDirectory()) return spec;
  if (/^[\w.-]+$/.test(spec)) {
    for (const ext of CLUSTER_EXTENSIONS) {
      const file = join(shippedClustersDir(), `${spec}${ext}`);
      if (existsSync(file)) return file;
    }
  }
  const looksLikeName = !/[/\\]/.test(spec) && !CLUSTER_EXTENSIONS.includes(extname(spec).toLowerCase());
  if (looksLikeName)
    throw new ArgumentError(
      `--cluster ${spec}: no such cluster file or built-in cluster (built-in: ${shippedClusterNames().join(", ")})`,
      { file: spec, field: "cluster" },
      "BAD_CONFIG",
    );
  return spec;
}

/** Loads the cluster a `--cluster` value names (a path or a shipped cluster's name); see {@link resolveClusterSpec}. */
export function loadClusterSpec(spec: string): Cluster {
  return loadCluster(resolveClusterSpec(spec));
}

/** The cluster of --cluster, or the shipped local cluster (two pinned one-core devices) by default. */
export function clusterFromFlags(spec: string | undefined): Cluster {
  return loadClusterSpec(spec ?? "local");
}
