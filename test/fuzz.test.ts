import assert from "node:assert/strict";
import { test } from "node:test";
import { fuzz } from "../fuzz/run.js";

// A fixed sample of the fuzz run (`npm run fuzz` runs 10,000 cases of each kind). Seed 1's first 800 model cases
// include ones that used to escape as internal errors (an initializer with fewer values than its shape, a
// sample input of 16 GiB).
for (const [kind, count] of [
  ["model", 800],
  ["frame", 400],
] as const) {
  test(`${count} mutated ${kind}s: each is accepted or refused with cleave's own error; no crash, no hang`, async () => {
    const r = await fuzz({ kind, count, seed: 1, caseTimeoutMs: 20_000 });
    assert.deepEqual(r.internal, [], "internal errors");
    assert.deepEqual(r.hangs, [], "hangs");
    assert.deepEqual(r.crashes, [], "crashes");
    assert.equal(r.ok + r.refused, count);
    assert.ok(r.ok > 0 && r.refused > 0, `the mutations reach both ends (${r.ok} ok, ${r.refused} refused)`);
  });
}
