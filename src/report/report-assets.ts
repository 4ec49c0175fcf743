import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CleaveError } from "../errors.js";

/** A browser library inlined into the report: npm package and the UMD build file inside it. */
export interface LibraryAsset {
  package: string;
  file: string;
}

/** Browser libraries the report inlines, in load order (UMD builds that set window globals). */
export const REPORT_LIBRARIES: readonly LibraryAsset[] = [
  // The graph is laid out at generation time (report-graph.ts), so the page needs no layout extension.
  { package: "cytoscape", file: "dist/cytoscape.min.js" },
  { package: "chart.js", file: "dist/chart.umd.min.js" },
  // Registers itself with window.Chart.
  { package: "chartjs-plugin-annotation", file: "dist/chartjs-plugin-annotation.min.js" },
];

/** The report page's own client files under src/report/page/, in load order. */
export const REPORT_PAGE_SCRIPTS: readonly string[] = [
  "page-format.js",
  "page-graph.js",
  "page-charts.js",
  "page-main.js",
];

/** The report page's stylesheet under src/report/page/. */
export const REPORT_PAGE_STYLE = "report.css";

/** Texts of everything inlined into a report page. */
export interface ReportAssets {
  libraries: Array<{ name: string; version: string; code: string }>;
  scripts: Array<{ name: string; code: string }>;
  style: string;
}

let cached: ReportAssets | undefined;

/**
 * Reads the libraries (from node_modules, resolved from this module) and the page's client files (from the
 * package's src/report/page/, found from here in both the source tree and the compiled dist/ tree). Cached.
 */
export function reportAssets(): ReportAssets {
  if (cached) return cached;
  const pageDir = findPageDir();
  cached = {
    libraries: REPORT_LIBRARIES.map((lib) => {
      const dir = packageDir(lib.package);
      const version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string })
        .version;
      return { name: lib.package, version, code: readFileSync(join(dir, lib.file), "utf8") };
    }),
    scripts: REPORT_PAGE_SCRIPTS.map((name) => ({ name, code: readFileSync(join(pageDir, name), "utf8") })),
    style: readFileSync(join(pageDir, REPORT_PAGE_STYLE), "utf8"),
  };
  return cached;
}

/** Folder of an installed npm package, found by node's resolution from this module. */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new CleaveError(
      "FILE_NOT_FOUND",
      `the report needs the npm package '${name}' (npm install ${name})`,
      { file: name },
    );
  }
  // Walk up from the entry file to the folder whose package.json names the package.
  let dir = dirname(entry);
  for (;;) {
    const pj = join(dir, "package.json");
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === name)
      return dir;
    const up = dirname(dir);
    if (up === dir)
      throw new CleaveError("FILE_NOT_FOUND", `cannot find the folder of npm package '${name}'`);
    dir = up;
  }
}

function findPageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "src", "report", "page");
    if (existsSync(join(candidate, REPORT_PAGE_STYLE))) return candidate;
    if (existsSync(join(dir, "page", REPORT_PAGE_STYLE))) return join(dir, "page");
    const up = dirname(dir);
    if (up === dir)
      throw new CleaveError("FILE_NOT_FOUND", "cannot find the report page files (src/report/page/)");
    dir = up;
  }
}
