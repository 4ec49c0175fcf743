import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { netnsUnavailable } from "../src/harness/testbed.js";
import { testbedPrefix } from "./helpers/testbed-prefix.js";

// The README's command blocks, run in order as a new user would, so the README cannot drift from the tool.

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const readme = readFileSync(join(root, "README.md"), "utf8");

/** A fenced block of the README: its language, its text and the heading it stands under. */
interface Block {
  lang: string;
  text: string;
  heading: string;
}

function blocks(md: string): Block[] {
  const out: Block[] = [];
  let heading = "";
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const h = /^#+\s+(.*)$/.exec(lines[i]);
    if (h) heading = h[1];
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    out.push({ lang: open[1], text: body.join("\n"), heading });
  }
  return out;
}

const all = blocks(readme);
const shell = all.filter((b) => b.lang === "sh");
const work = mkdtempSync(join(tmpdir(), "cleave readme "));
process.once("exit", () => rmSync(work, { recursive: true, force: true }));
// `./cleave` in the README is the checkout's launcher; the commands run in a folder of their own (with a
// space in its path) so the files they write stay out of the checkout.
writeFileSync(join(work, "cleave"), `#!/bin/sh\nexec "${join(root, "cleave")}" "$@"\n`);
chmodSync(join(work, "cleave"), 0o755);
// The testbed blocks keep their state and namespace names to this run, so no other testbed on the host meets them.
const env = {
  ...process.env,
  CLEAVE_CACHE_DIR: join(work, ".cache"),
  CLEAVE_TESTBED_STATE: join(work, "testbed", "state.json"),
  CLEAVE_TESTBED_PREFIX: testbedPrefix("rd"),
};

/** Runs one README block as a bash script (stopping at the first failing command) in the work folder. */
function runBlock(b: Block): void {
  const script = `set -euo pipefail\n${b.text}\n`;
  const r = spawnSync("bash", ["-c", script], { cwd: work, env, encoding: "utf8", maxBuffer: 64 << 20 });
  const tail = (s: string) => s.split("\n").slice(-15).join("\n");
  assert.equal(
    r.status,
    0,
    `README block under "${b.heading}" failed (exit ${r.status}):\n${b.text}\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`,
  );
}

test("the set-up commands are the ones CI runs", () => {
  const first = shell[0];
  assert.ok(first, "README has no sh block");
  const cmds = first.text.split("\n").map((l) => l.replace(/#.*$/, "").trim());
  assert.deepEqual(cmds, ["npm ci && npm run demo", "npm test"]);
  const ci = readFileSync(join(root, ".ci/run"), "utf8");
  assert.match(ci, /^npm ci\b/m);
  assert.match(ci, /^npm test$/m);
});

test("npm run demo runs (the main job of the first set-up command)", () => {
  const r = spawnSync("npm", ["run", "--silent", "demo"], {
    cwd: root,
    env,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, `npm run demo failed:\n${r.stderr.split("\n").slice(-15).join("\n")}`);
  assert.match(r.stdout, /speed-up/i);
});

test("the README's command blocks run in order", async (t) => {
  const rest = shell.slice(1);
  assert.ok(rest.length >= 2, "README lost its command blocks");
  for (const b of rest) {
    const needsTestbed = /cleave testbed up/.test(b.text);
    const why = needsTestbed ? netnsUnavailable() : undefined;
    await t.test(`block under "${b.heading}"`, { skip: why }, () => runBlock(b));
  }
});

test("the library example runs against the built package", () => {
  const ts = all.find((b) => b.lang === "ts");
  assert.ok(ts, "README has no library example");
  // The example imports "cleave": resolve that name to this checkout, as an installed package would.
  const pkgDir = join(work, "node_modules");
  spawnSync("mkdir", ["-p", pkgDir]);
  spawnSync("ln", ["-sfn", root, join(pkgDir, "cleave")]);
  writeFileSync(join(work, "example.mjs"), ts.text);
  const r = spawnSync("node", ["example.mjs"], { cwd: work, env, encoding: "utf8" });
  assert.equal(r.status, 0, `library example failed:\n${r.stderr}`);
});
