import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { VERSION } from "../src/version.js";

// The checkout's root, from dist/test/ (compiled) or test/ (tsx).
const root = [join(import.meta.dirname, "..", ".."), join(import.meta.dirname, "..")].find((d) =>
  existsSync(join(d, "package.json")),
)!;
const bin = join(root, "dist", "src", "cli", "main.js");
// A space in every path below: an installed cleave must not depend on URL-safe folder names.
const dir = mkdtempSync(join(tmpdir(), "cleave install "));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(file, args, {
    cwd: opts.cwd,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? r.error?.message ?? "" };
}

test("the bin runs when started through a symlink (npm link, node_modules/.bin)", () => {
  assert.ok(existsSync(bin), `${bin} missing: build first (npx tsc -p .)`);
  const links = join(dir, "link bin");
  mkdirSync(links);
  const link = join(links, "cleave");
  symlinkSync(bin, link);
  const version = run(process.execPath, [link, "--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), VERSION);
  const help = run(process.execPath, [link, "frob"]);
  assert.equal(help.code, 2);
  assert.match(help.stderr, /^error: unknown command 'frob'/);
});

test("npm pack, then an offline install into an empty project: node_modules/.bin/cleave runs", () => {
  assert.ok(existsSync(bin), `${bin} missing: build first (npx tsc -p .)`);
  // The package as published (prepare is not re-run: dist/ is this checkout's build).
  const pack = run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", dir], { cwd: root });
  assert.equal(pack.code, 0, pack.stderr);
  const tgz = pack.stdout.trim().split("\n").pop()!;
  assert.match(tgz, /^cleave-.*\.tgz$/);

  // An empty project that depends on the tarball, locked to this checkout's dependency versions, so that
  // `npm ci --offline` installs it from npm's cache without the network. onnxruntime-node's download of CUDA
  // libraries is skipped both ways npm versions know (allowScripts, and the variable its script reads).
  const project = join(dir, "empty project");
  mkdirSync(project);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
  const spec = `file:../${tgz}`;
  const manifest = {
    name: "empty",
    version: "1.0.0",
    private: true,
    dependencies: { cleave: spec },
    allowScripts: { bufferutil: false, "onnxruntime-node": false },
  };
  // Production packages; one the dev tools need and an optional production package needs too (devOptional,
  // e.g. tslib under sharp's optional wasm build) is optional here.
  const production = Object.fromEntries(
    Object.entries(lock.packages as Record<string, { dev?: boolean; devOptional?: boolean }>)
      .filter(([k, v]) => k !== "" && v.dev !== true)
      .map(([k, v]) => {
        if (v.devOptional !== true) return [k, v];
        const { devOptional: _, ...rest } = v;
        return [k, { ...rest, optional: true }];
      }),
  );
  const cleaveEntry = {
    version: pkg.version,
    resolved: spec,
    license: pkg.license,
    dependencies: pkg.dependencies,
    bin: pkg.bin,
    engines: pkg.engines,
  };
  writeFileSync(join(project, "package.json"), JSON.stringify(manifest, null, 2));
  writeFileSync(
    join(project, "package-lock.json"),
    JSON.stringify({
      name: "empty",
      version: "1.0.0",
      lockfileVersion: 3,
      requires: true,
      packages: { "": manifest, "node_modules/cleave": cleaveEntry, ...production },
    }),
  );
  const install = run("npm", ["ci", "--offline", "--no-audit", "--no-fund"], {
    cwd: project,
    env: { ONNXRUNTIME_NODE_INSTALL: "skip" },
  });
  assert.equal(
    install.code,
    0,
    `npm ci --offline failed (npm's cache must hold this checkout's dependencies, as after its own npm ci): ${install.stderr}`,
  );

  const installed = join(project, "node_modules", ".bin", "cleave");
  const version = run(installed, ["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), VERSION);
  // The shipped clusters by name, found from an installed path with spaces in it.
  const est = run(installed, [
    "estimate",
    "zoo:squeezenet1_1",
    "--cluster",
    "local",
    "--stages",
    "2",
    "--json",
  ]);
  assert.equal(est.code, 0, est.stderr);
  assert.equal(JSON.parse(est.stdout).cluster, "local");
  // onnxruntime's bundled CPU library loads without the skipped download.
  const out = join(project, "profile.json");
  const prof = run(installed, ["profile", "zoo:squeezenet1_1", "--runs", "1", "--warmup", "0", "-o", out]);
  assert.equal(prof.code, 0, prof.stderr);
  assert.equal(JSON.parse(readFileSync(out, "utf8")).format, "cleave-profile");
});
