import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import type { ParsedFlags } from "./command.js";

const CONFIG = z.strictObject({
  listen: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  "token-file": z.string().min(1).optional(),
  threads: z.int().min(1).optional(),
  name: z.string().min(1).optional(),
  transport: z.enum(["tcp", "ws"]).optional(),
  "max-frame": z.int().min(1).optional(),
  metrics: z.string().min(1).optional(),
  "no-receive-pool": z.boolean().optional(),
  runs: z.enum(["auto", "thread", "inline"]).optional(),
});

/**
 * Reads a `cleave worker --config` file (YAML or JSON): the worker's flags by their long names, e.g.
 * `listen: 0.0.0.0:7001`, `token-file: /run/secrets/token`, `threads: 2`, `metrics: 0.0.0.0:9100`. Returns
 * them as parsed flags; an unknown key or a wrong value is a one-line ArgumentError naming the file and key.
 */
export function readWorkerConfig(path: string): ParsedFlags["values"] {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ArgumentError(`--config ${path}: ${errorMessage(err).split("\n")[0]}`, {
      file: path,
      field: "config",
    });
  }
  const r = CONFIG.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    if (issue.code === "unrecognized_keys")
      throw new ArgumentError(
        `${path}: unknown key '${issue.keys[0]}' (a worker config takes ${Object.keys(CONFIG.shape).join(", ")})`,
        { file: path, field: issue.keys[0] },
      );
    const key = issue.path.join(".");
    throw new ArgumentError(`${path}: ${key}: ${issue.message}`, { file: path, field: key });
  }
  const out: ParsedFlags["values"] = {};
  for (const [k, v] of Object.entries(r.data)) out[k] = typeof v === "number" ? String(v) : v;
  return out;
}

/**
 * The token a worker or coordinator uses: `--token`, else the first line of `--token-file`, else
 * `$CLEAVE_TOKEN`, else none. A token on the command line is visible to every user in `ps`; the file and
 * the variable are not.
 */
export function tokenFrom(values: ParsedFlags["values"]): string | undefined {
  return givenToken(values) ?? process.env.CLEAVE_TOKEN;
}

/** The token `--token` or `--token-file` gives (see {@link tokenFrom}), or undefined when neither is given. */
export function givenToken(values: ParsedFlags["values"]): string | undefined {
  const t = values.token;
  if (typeof t === "string") return t;
  const file = values["token-file"];
  if (typeof file === "string") {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ArgumentError(`--token-file ${file}: ${errorMessage(err)}`, { file, field: "token-file" });
    }
    const token = text.split(/\r?\n/)[0].trim();
    if (token === "")
      throw new ArgumentError(`--token-file ${file}: the file is empty`, { file, field: "token-file" });
    return token;
  }
  return undefined;
}
