import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const here = import.meta.dirname;
const compiled = join(here, "..", "..", "src", "cli", "main.js");
const source = join(here, "..", "..", "src", "cli", "main.ts");

/** Runs the real `cleave` executable (compiled, or from source under tsx) and returns its exit code and output. */
export function cleave(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const argv = existsSync(compiled) ? [compiled, ...args] : ["--import", "tsx", source, ...args];
  const r = spawnSync(process.execPath, argv, {
    cwd: opts.cwd,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The one line of a user error: no stack trace, nothing else said as an error. */
export function oneLineError(r: { code: number; stderr: string }): string {
  assert.notEqual(r.code, 0, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.filter((l) => l.startsWith("error:")).length, 1, r.stderr);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
  return lines[lines.length - 1];
}
