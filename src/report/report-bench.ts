import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import { type Plan, parsePlan } from "../partition/plan.js";
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
  aloneLatencyMs: LATENCY.optional(),
  communicationMs: MS.optional(),
});
/** A measured run as `cleave run --json` prints it (runtime's RunSplitResult), optionally named. */
const RUN = z.object({
  name: z.string().min(1).optional(),
  devices: z.array(z.string()),
  report: z.object({ throughput: z.number().nonnegative(), latencyMs: LATENCY }),
  stageBusyMs: z.record(z.string(), MS).optional(),
});
const TOP = z.object({ configurations: z.array(z.unknown()).min(1) });
/** A row of `cleave bench` (runtime's BenchRow): predicted and measured figures of one configuration. */
const ROW = z.object({
  name: z.string().min(1),
  devices: z.array(z.string()),
  measured: z.object({ throughput: z.number().nonnegative(), latencyMs: LATENCY }),
  alone: z.object({ latencyMs: LATENCY, transferMs: MS }).optional(),
  stageBusyMs: z.record(z.string(), MS).optional(),
});
const BENCH_RESULT = z.object({
  rows: z.array(z.unknown()).min(1),
  plan: z.object({ plan: z.unknown() }).optional(),
  speedup: z.number().nonnegative().optional(),
  predictedSpeedup: z.number().nonnegative().optional(),
  findings: z.array(z.string()).optional(),
});

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** A measured configuration; per-stage times from the busy time per device when each stage has its own. */
function measured(
  name: string,
  devices: string[],
  throughput: number,
  latencyMs: BenchConfiguration["latencyMs"],
  busy: Record<string, number> | undefined,
): BenchConfiguration {
  const c: BenchConfiguration = { name, devices, throughput, latencyMs };
  if (busy && new Set(devices).size === devices.length && devices.every((d) => busy[d] !== undefined)) {
    c.stages = devices.map((d) => ({ computeMs: busy[d] }));
  }
  return c;
}

const fromRun = (r: z.infer<typeof RUN>) =>
  measured(r.name ?? "plan", r.devices, r.report.throughput, r.report.latencyMs, r.stageBusyMs);
const fromRow = (r: z.infer<typeof ROW>) => {
  const c = measured(r.name, r.devices, r.measured.throughput, r.measured.latencyMs, r.stageBusyMs);
  if (r.alone) {
    c.aloneLatencyMs = r.alone.latencyMs;
    c.communicationMs = r.alone.transferMs;
  }
  return c;
};

/** A bench file: the measurements, and the plan it measured when the file carries one (`cleave bench`). */
export interface BenchFile {
  bench: BenchInput;
  plan?: Plan;
}

/**
 * Reads the measurements `cleave report --bench` takes: the file `cleave bench` writes (rows of measured
 * configurations, and the plan it measured), the output of `cleave run --json` (taken as the plan's), or
 * `{configurations: [...]}` of {@link BenchConfiguration} or runs. Errors name the file and field.
 */
export function readBenchFile(path: string): BenchFile {
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
  if (isObject(obj) && "rows" in obj) {
    const r = check(BENCH_RESULT, obj, []);
    const bench: BenchInput = {
      configurations: r.rows.map((row, i) => fromRow(check(ROW, row, ["rows", i]))),
    };
    if (r.speedup !== undefined) bench.speedup = r.speedup;
    if (r.findings !== undefined) bench.findings = r.findings;
    return r.plan ? { bench, plan: parsePlan(r.plan.plan, `${path}: plan.plan`) } : { bench };
  }
  if (isObject(obj) && !("configurations" in obj) && "report" in obj) {
    return { bench: { configurations: [fromRun(check(RUN, obj, []))] } };
  }
  const top = check(TOP, obj, []);
  return {
    bench: {
      configurations: top.configurations.map((e, i) =>
        isObject(e) && "report" in e
          ? fromRun(check(RUN, e, ["configurations", i]))
          : check(CONFIGURATION, e, ["configurations", i]),
      ),
    },
  };
}
