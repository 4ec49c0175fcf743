import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, extname, isAbsolute, join, resolve } from "node:path";
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

/**
 * A path a plan file records (its model or cluster), as given when it exists or is absolute, else resolved
 * beside the plan file when it exists there, else as given.
 */
export function locatedBesidePlan(path: string, planPath: string): string {
  if (path.startsWith("zoo:") || isAbsolute(path) || existsSync(path)) return path;
  const beside = resolve(dirname(resolve(planPath)), path);
  return existsSync(beside) ? beside : path;
}

/**
 * The cluster a command runs a plan on: --cluster when given; else the cluster the plan was made for (the
 * file it records, or the shipped cluster of its name); else, with no plan, the shipped local cluster.
 */
export function clusterForPlan(
  spec: string | undefined,
  plan: { cluster: string; clusterName: string } | undefined,
  planPath: string | undefined,
): Cluster {
  if (spec !== undefined || plan === undefined || planPath === undefined) return clusterFromFlags(spec);
  const file = locatedBesidePlan(plan.cluster, planPath);
  if (existsSync(file)) return loadCluster(file);
  if (shippedClusterNames().includes(plan.clusterName)) return loadClusterSpec(plan.clusterName);
  throw new ArgumentError(
    `${planPath}: its cluster '${plan.cluster}' is not a file here: give it with --cluster cluster.yaml`,
    { file: planPath, field: "cluster" },
  );
}
