import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// Runs from dist/test; the sources sit two folders up.
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

/** Folder of a source file relative to src ("" for the files at its top). */
function folderOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes("/") ? rel.split("/")[0] : "";
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Imports between folders of src: folder -> folders it imports from, with one file that does, per pair. */
function folderImports(): Map<string, Map<string, string>> {
  const edges = new Map<string, Map<string, string>>();
  for (const file of sources(SRC)) {
    if (relative(SRC, file) === "index.ts") continue; // the public API re-exports every folder
    const from = folderOf(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
      const to = folderOf(resolve(dirname(file), m[1]));
      if (to === from || to === "") continue;
      if (!edges.has(from)) edges.set(from, new Map());
      if (!edges.get(from)!.has(to)) edges.get(from)!.set(to, relative(SRC, file));
    }
  }
  return edges;
}

test("folders of src import each other without a cycle (a file-level check does not see these)", () => {
  const edges = folderImports();
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (f: string): void => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      const cycle = [...path.slice(path.indexOf(f)), f];
      const why = cycle.slice(1).map((t, i) => `${cycle[i]} -> ${t} (${edges.get(cycle[i])!.get(t)})`);
      assert.fail(`folder import cycle: ${why.join(", ")}`);
    }
    state.set(f, "open");
    path.push(f);
    for (const t of edges.get(f)?.keys() ?? []) visit(t);
    path.pop();
    state.set(f, "done");
  };
  for (const f of edges.keys()) visit(f);
  assert.ok(edges.size >= 5, "the scan found the folders' imports");
});

test("export and runtime read the plan's shape from partition, never the other way", () => {
  const edges = folderImports();
  for (const lower of ["export", "runtime", "report", "cli"]) {
    const file = edges.get("partition")?.get(lower);
    assert.equal(file, undefined, `partition imports ${lower} (${file})`);
  }
});

test("the runtime is what a deployment runs: it imports neither the measurement harness nor what sits above", () => {
  const edges = folderImports();
  for (const upper of ["harness", "serve", "report", "cli"]) {
    const file = edges.get("runtime")?.get(upper);
    assert.equal(file, undefined, `runtime imports ${upper} (${file})`);
  }
  for (const upper of ["serve", "cli"]) {
    const file = edges.get("harness")?.get(upper);
    assert.equal(file, undefined, `harness imports ${upper} (${file})`);
  }
  assert.ok(edges.get("harness")?.has("runtime"), "the scan sees the harness use the runtime");
});
