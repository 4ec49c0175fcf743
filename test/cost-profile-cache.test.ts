import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cacheDir, cachedProfile, profileCacheKey } from "../src/cost/profile-cache.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { buildZooModel } from "../src/zoo/index.js";

test("profile cache: measured once per machine and model, read back, a corrupt file measured again", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-cache-"));
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const first = await cachedProfile(model, { dir });
  assert.equal(first.fromCache, false);
  assert.equal(first.writeError, undefined);
  assert.ok(first.profile.wholeRun > 0);
  assert.deepEqual(readdirSync(dir), [first.path.slice(dir.length + 1)], "one file, no temporary left");
  const again = await cachedProfile(model, { dir });
  assert.equal(again.fromCache, true);
  assert.deepEqual(again.profile, first.profile);
  // Another thread count or another model is another key.
  assert.notEqual(profileCacheKey(model, 1), profileCacheKey(model, 2));
  const other = await analyzeModel(buildZooModel("mobilenet_v2"), { source: "mobilenet_v2" });
  assert.notEqual(profileCacheKey(model, 1), profileCacheKey(other, 1));
  writeFileSync(first.path, "{ truncated");
  const redone = await cachedProfile(model, { dir });
  assert.equal(redone.fromCache, false, "a corrupt cache file is measured again");
  assert.equal((await cachedProfile(model, { dir })).fromCache, true, "and replaced");
});

test("profile cache: the folder follows CLEAVE_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache", () => {
  assert.equal(cacheDir({ CLEAVE_CACHE_DIR: "/x/c", XDG_CACHE_HOME: "/y" }), "/x/c");
  assert.equal(cacheDir({ XDG_CACHE_HOME: "/y" }), "/y/cleave");
  assert.match(cacheDir({}), /\/\.cache\/cleave$/);
});
