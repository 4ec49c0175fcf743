import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import type { CliIO } from "../src/cli/command.js";
import { progress } from "../src/cli/progress.js";

function io(): CliIO & { lines: string[] } {
  const lines: string[] = [];
  return { out: () => {}, err: (t) => lines.push(t), isTTY: false, lines };
}

test("progress off a terminal: a line every interval while work runs, none for short work", {
  skip: process.stderr.isTTY === true ? "stderr is a terminal here" : false,
}, async () => {
  const quick = io();
  const q = progress(quick, true, 200);
  q.step("planning");
  q.done();
  assert.deepEqual(quick.lines, [], "work shorter than an interval prints nothing");

  const slow = io();
  const p = progress(slow, false, 60); // --json: no bar, but stderr lines all the same
  p.step("measuring (200 requests)");
  await sleep(250); // one long step without events: the timer still reports it
  p.fraction(0.5, "profiling fused");
  await sleep(100);
  p.fraction(0.75);
  p.done();
  const n = slow.lines.length;
  await sleep(150);
  assert.equal(slow.lines.length, n, "no line after done()");
  assert.ok(n >= 3, `lines: ${slow.lines.join(" | ")}`);
  for (const l of slow.lines)
    assert.match(l, /^cleave: (measuring \(200 requests\)|profiling fused \d+%)( \(\d+ s\))?$/);
  assert.ok(slow.lines.some((l) => l.startsWith("cleave: measuring")));
  assert.ok(slow.lines.some((l) => /profiling fused (50|75)%/.test(l)));
});
