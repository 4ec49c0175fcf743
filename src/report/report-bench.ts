import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import type { BenchConfiguration, BenchInput } from "./report-data.js";

const MS = z.number().nonnegative();
const LATENCY = z.object({ p50: MS, p95: MS.optional(), p99: MS.optional(), mean: MS.optional() });
/** One configuration in the report's own shape. */
const CONFIGURATION = z.object({
  name: z.string().min(1),
  throughput: z.number().nonnegative(),
  latencyMs: LATENCY,
  stages: z.array(z.object({ computeMs: MS, transferMs: MS.optional() })).optional(),
  inputTransferMs: MS.optional(),
});
/** A measured run as `cleave run --json` prints it (runtime's RunSplitResult), optionally named. */
const RUN = z.object({
  name: z.string().min(1).optional(),
  devices: z.array(z.string()),
  report: z.object({ throughput: z.number().nonnegative(), latencyMs: LATENCY }),
  stageBusyMs: z.record(z.string(), MS).optional(),
});
const TOP = z.object({ configurations: z.array(z.unknown()).min(1) });

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** A run's figures as a configuration; per-stage times when each stage has its own device. */
function fromRun(r: z.infer<typeof RUN>): BenchConfiguration {
  const c: BenchConfiguration = {
    name: r.name ?? "plan",
    throughput: r.report.throughput,
    latencyMs: r.report.latencyMs,
  };
  const busy = r.stageBusyMs;
  if (busy && new Set(r.devices).size === r.devices.length && r.devices.every((d) => busy[d] !== undefined)) {
    c.stages = r.devices.map((d) => ({ computeMs: busy[d] }));
  }
  return c;
}

/**
 * Reads the measurements `cleave report --bench` takes: `{configurations: [...]}` where each entry is either
 * {@link BenchConfiguration} ("plan" or a baseline's name, requests/s, latencies in ms) or a measured run as
 * `cleave run --json` prints it (with a `name`), or one such run alone (taken as the plan's). Errors name the
 * file and field.
 */
export function readBenchFile(path: string): BenchInput {
  if (!existsSync(path)) throw new ArgumentError(`${path}: no such bench file`, { file: path }, "BAD_CONFIG");
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ArgumentError(
      `${path}: not a JSON bench file (${errorMessage(err)})`,
      { file: path },
      "BAD_CONFIG",
    );
  }
  // Each entry is checked against the shape it claims (a run has `report`), so errors point at its field.
  const check = <T>(schema: z.ZodType<T>, value: unknown, at: PropertyKey[]): T => {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    const field = [...at, ...issue.path]
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("");
    throw new ArgumentError(
      `${path}: not a cleave bench file (${field.replace(/^\./, "") || "top level"}: ${issue.message})`,
      { file: path, field },
      "BAD_CONFIG",
    );
  };
  if (isObject(obj) && !("configurations" in obj) && "report" in obj) {
    return { configurations: [fromRun(check(RUN, obj, []))] };
  }
  const top = check(TOP, obj, []);
  return {
    configurations: top.configurations.map((e, i) =>
      isObject(e) && "report" in e
        ? fromRun(check(RUN, e, ["configurations", i]))
        : check(CONFIGURATION, e, ["configurations", i]),
    ),
  };
}
