import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { VERSION } from "../version.js";
import {
  deviceInfo,
  loadProfile,
  modelIdentity,
  type Profile,
  type ProfileProgress,
  profileModel,
} from "./profile.js";

/**
 * The folder cleave caches measurements of this machine in: `$CLEAVE_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/cleave`, else `~/.cache/cleave`.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CLEAVE_CACHE_DIR !== undefined && env.CLEAVE_CACHE_DIR !== "") return env.CLEAVE_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== "" ? env.XDG_CACHE_HOME : undefined;
  return join(xdg ?? join(homedir(), ".cache"), "cleave");
}

/**
 * What a cached profile is valid for: the machine (CPU model, logical CPUs, platform, architecture), the
 * onnxruntime and cleave versions, the onnxruntime threads, the model (its identity hash) and its input shapes.
 * Any of them changing measures again.
 */
export function profileCacheKey(model: AnalyzedModel, threads: number): string {
  const d = deviceInfo(threads);
  const shapes = model.graph.inputs
    .map((v) => `${v.name}=${model.types.get(v.name)?.shape.join("x") ?? "?"}`)
    .join(",");
  return createHash("sha256")
    .update(
      [
        d.cpu,
        d.cpus,
        d.platform,
        d.arch,
        d.onnxruntime,
        `cleave ${VERSION}`,
        threads,
        modelIdentity(model.graph).hash,
        shapes,
      ].join("\n"),
    )
    .digest("hex")
    .slice(0, 16);
}

/** What {@link cachedProfile} returns. */
export interface CachedProfile {
  profile: Profile;
  /** File the profile is cached in. */
  path: string;
  /** True when it was read from the cache, false when it was measured now (and cached). */
  fromCache: boolean;
  /** Why the cache could not be written, when it could not (the profile is still returned). */
  writeError?: string;
}

/** Options of {@link cachedProfile}. */
export interface CachedProfileOptions {
  /** onnxruntime threads (default 1). */
  threads?: number;
  /** Cache folder (default {@link cacheDir}). */
  dir?: string;
  /** Name of the model in the profile. */
  source?: string;
  onProgress?: (p: ProfileProgress) => void;
}

/**
 * A profile of `model` on this machine at `threads` onnxruntime threads: read from the cache when one was
 * measured with the same {@link profileCacheKey}, else measured now with onnxruntime ({@link profileModel})
 * and written to the cache atomically (a temporary file renamed into place). An unreadable or corrupt cache
 * file is measured again and replaced; a cache that cannot be written leaves the measurement usable.
 */
export async function cachedProfile(
  model: AnalyzedModel,
  opts: CachedProfileOptions = {},
): Promise<CachedProfile> {
  const threads = opts.threads ?? 1;
  const dir = opts.dir ?? cacheDir();
  const id = modelIdentity(model.graph);
  const stem = id.file.replace(/\.onnx$/, "").replace(/[^A-Za-z0-9._-]/g, "_");
  const path = join(dir, `profile-${stem}-${threads}t-${profileCacheKey(model, threads)}.json`);
  if (existsSync(path)) {
    try {
      const p = loadProfile(path);
      if (p.model.hash === id.hash) return { profile: p, path, fromCache: true };
    } catch {
      // A corrupt or foreign file: measured again below and replaced.
    }
  }
  const profile = await profileModel(model.graph.model, {
    analyzed: model,
    source: opts.source ?? model.graph.source,
    threads,
    onProgress: opts.onProgress,
  });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(tmp, `${JSON.stringify(profile, null, 2)}\n`);
    renameSync(tmp, path);
    return { profile, path, fromCache: false };
  } catch (err) {
    rmSync(tmp, { force: true });
    return { profile, path, fromCache: false, writeError: errorMessage(err) };
  }
}
