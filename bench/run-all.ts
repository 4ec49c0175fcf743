/**
 * Runs the benchmarks in bench/ one after another, each in its own process (so one's memory and warm caches
 * do not colour the next), and prints one JSON object: each benchmark's own JSON output by name, with its
 * wall time in ms, or its exit code and last error line when it failed. Progress goes to stderr.
 *
 * Usage: npm run bench [-- --only planner,order] [-- --list]
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";

/** Files in bench/ that are helpers of another benchmark, not benchmarks. */
const HELPERS = new Set(["run-all", "ingest-task", "chain"]);

const here = import.meta.dirname;
const ext = import.meta.filename.endsWith(".ts") ? ".ts" : ".js";
const all = readdirSync(here)
  .filter((f) => f.endsWith(ext) && !f.endsWith(".d.ts"))
  .map((f) => basename(f, ext))
  .filter((n) => !HELPERS.has(n))
  .sort();

const args = process.argv.slice(2);
if (args.includes("--list")) {
  process.stdout.write(`${JSON.stringify(all)}\n`);
  process.exit(0);
}
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? (args[onlyAt + 1] ?? "").split(",").filter((s) => s !== "") : all;
const unknown = only.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  process.stderr.write(`error: unknown benchmark ${unknown.join(", ")} (benchmarks: ${all.join(", ")})\n`);
  process.exit(2);
}

const results: Record<string, unknown> = {};
let failed = 0;
for (const name of only) {
  process.stderr.write(`bench ${name}...\n`);
  const argv = ext === ".ts" ? ["--import", "tsx", join(here, `${name}.ts`)] : [join(here, `${name}.js`)];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, argv, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 2 ** 20,
  });
  const ms = Math.round(performance.now() - t0);
  let output: unknown;
  try {
    output = JSON.parse(r.stdout);
  } catch {
    output = undefined;
  }
  if (r.status === 0 && output !== undefined) results[name] = { ms, output };
  else {
    failed++;
    const last = r.stdout.trim().split("\n").pop() ?? "";
    results[name] = { ms, exitCode: r.status, signal: r.signal, error: r.error?.message ?? last };
  }
  process.stderr.write(
    `bench ${name}: ${r.status === 0 ? "done" : "failed"} in ${(ms / 1000).toFixed(1)} s\n`,
  );
}
process.stdout.write(`${JSON.stringify({ bench: "all", results }, null, 2)}\n`);
process.exitCode = failed > 0 ? 1 : 0;
