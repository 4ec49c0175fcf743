import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ArgumentError, errorMessage } from "../errors.js";
import type { DType } from "../onnx/dtype.js";
import type { Cluster, CoreCluster, Device, Link } from "./types.js";
import {
  BANDWIDTH,
  BYTES,
  ENERGY_PER_BIT,
  TIME_PER_BYTE,
  FREQUENCY,
  POWER,
  THROUGHPUT,
  TIME,
  type UnitKind,
  unitProblem,
} from "./units.js";

/** Options for {@link parseCluster}. */
export interface ParseClusterOptions {
  /** Folder that device `profile` paths are relative to (the cluster file's folder). Default: none (kept as given). */
  baseDir?: string;
}

/** Reads a cluster file (YAML or JSON), validates it and returns the typed cluster; errors name the file and field. */
export function loadCluster(path: string): Cluster {
  if (!existsSync(path))
    throw new ArgumentError(`${path}: no such cluster file`, { file: path }, "BAD_CONFIG");
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new Error("is a directory");
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ArgumentError(`${path}: cannot read (${errorMessage(err)})`, { file: path }, "BAD_CONFIG");
  }
  let obj: unknown;
  try {
    obj = extname(path).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const first = errorMessage(err).split("\n")[0];
    throw new ArgumentError(`${path}: not valid YAML/JSON (${first})`, { file: path }, "BAD_CONFIG");
  }
  const cluster = parseCluster(obj, path, { baseDir: dirname(resolve(path)) });
  return { ...cluster, name: cluster.name, source: path };
}

/**
 * Validates an already-parsed cluster object into a {@link Cluster}, converting human units to SI base units
 * (bytes, bytes/s, MAC/s, s, J/bit, W). Throws an ArgumentError (code BAD_CONFIG) whose one-line message is
 * `<source>: <field path>: <what is wrong>`.
 */
export function parseCluster(obj: unknown, source = "cluster", opts: ParseClusterOptions = {}): Cluster {
  const r = CLUSTER.safeParse(obj, { reportInput: true });
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = fieldPath(issue.path);
    const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : "";
    throw bad(source, field, `${issueText(issue)}${more}`);
  }
  const raw = r.data;
  const seen = new Map<string, number>();
  raw.devices.forEach((d, i) => {
    const prev = seen.get(d.name);
    if (prev !== undefined)
      throw bad(source, `devices[${i}].name`, `duplicate device name "${d.name}" (also devices[${prev}])`);
    seen.set(d.name, i);
  });
  const known = () => raw.devices.map((d) => d.name).join(", ");
  const checkDevice = (field: string, name: string) => {
    if (!seen.has(name)) throw bad(source, field, `unknown device "${name}" (devices: ${known()})`);
  };
  raw.links.forEach((l, i) => {
    const inLink = new Set<string>();
    l.devices.forEach((name, j) => {
      checkDevice(`links[${i}].devices[${j}]`, name);
      if (inLink.has(name))
        throw bad(source, `links[${i}].devices[${j}]`, `device "${name}" is listed twice in this link`);
      inLink.add(name);
    });
  });
  checkDevice("inputDevice", raw.inputDevice);
  checkDevice("outputDevice", raw.outputDevice);

  const devices: Device[] = raw.devices.map((d) => {
    const dev: Device = {
      name: d.name,
      kind: d.kind,
      macsPerSecond: d.throughput,
      memoryBandwidth: d.memoryBandwidth,
      memory: d.memory,
      idlePower: d.idlePower,
      activePower: d.activePower,
    };
    if (d.coreClusters) dev.coreClusters = d.coreClusters;
    if (d.profile !== undefined)
      dev.profile =
        opts.baseDir !== undefined && !isAbsolute(d.profile) ? resolve(opts.baseDir, d.profile) : d.profile;
    if (d.endpoint !== undefined) dev.endpoint = d.endpoint;
    if (d.cpus !== undefined) dev.cpus = d.cpus;
    if (d.cpuShare !== undefined) dev.cpuShare = d.cpuShare;
    if (d.threads !== undefined) dev.threads = d.threads;
    if (d.host !== undefined) dev.host = d.host;
    if (d.coRunSlowdown !== undefined) dev.coRunSlowdown = d.coRunSlowdown;
    if (d.transferCpu !== undefined) dev.transferCpu = d.transferCpu;
    if (d.coordinatorCpu !== undefined) dev.coordinatorCpu = d.coordinatorCpu;
    return dev;
  });
  const links: Link[] = raw.links.map((l) => ({ ...l, devices: [...l.devices] }));
  const cluster: Cluster = {
    name: raw.name ?? basename(source, extname(source)),
    devices,
    links,
    inputDevice: raw.inputDevice,
    outputDevice: raw.outputDevice,
    source,
  };
  if (raw.constraints !== undefined) cluster.constraints = raw.constraints;
  return cluster;
}

function bad(source: string, field: string, msg: string): ArgumentError {
  return new ArgumentError(`${source}: ${field}: ${msg}`, { file: source, field }, "BAD_CONFIG");
}

/** `["devices", 2, "memory"]` -> `devices[2].memory`. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(top level)" : out;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
}

function issueText(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case "invalid_type":
      if (input === undefined) return `missing (expected ${issue.expected})`;
      return `expected ${issue.expected}, got ${show(input)}`;
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => String(v)).join(", ")}, got ${show(input)}`;
    default:
      return issue.message;
  }
}

/** A required (or optional) field in human units, parsed to SI base units. */
function unit(kind: UnitKind) {
  return z.unknown().transform((v, ctx) => {
    if (v === undefined) {
      ctx.addIssue({ code: "custom", message: `missing (expected ${kind.what} like "${kind.example}")` });
      return z.NEVER;
    }
    const n = typeof v === "string" || typeof v === "number" ? kind.parse(v) : undefined;
    if (n === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `expected ${kind.what} like "${kind.example}", got ${show(v)}${unitProblem(kind, v)}`,
      });
      return z.NEVER;
    }
    return n;
  });
}

const DTYPES = [
  "float32",
  "float16",
  "bfloat16",
  "float64",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
] as const satisfies readonly DType[];

/** One throughput figure: "13.5 GMAC/s", "27 GFLOPS", or `{ macsPerCycle, clock }` (a bare number is refused). */
function throughputValue(v: unknown, path: PropertyKey[], ctx: z.RefinementCtx): number | undefined {
  if (v !== null && typeof v === "object" && !Array.isArray(v) && "macsPerCycle" in v) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (k !== "macsPerCycle" && k !== "clock") {
        ctx.addIssue({ code: "custom", message: `unknown key '${k}' (allowed: macsPerCycle, clock)`, path });
        return undefined;
      }
    }
    const perCycle = o.macsPerCycle;
    if (typeof perCycle !== "number" || !(perCycle > 0)) {
      ctx.addIssue({
        code: "custom",
        message: `expected a positive number, got ${show(perCycle)}`,
        path: [...path, "macsPerCycle"],
      });
      return undefined;
    }
    const clock =
      typeof o.clock === "string" || typeof o.clock === "number" ? FREQUENCY.parse(o.clock) : undefined;
    if (clock === undefined) {
      ctx.addIssue({
        code: "custom",
        message:
          o.clock === undefined
            ? `missing (expected a frequency like "200MHz")`
            : `expected a frequency like "200MHz", got ${show(o.clock)}${unitProblem(FREQUENCY, o.clock)}`,
        path: [...path, "clock"],
      });
      return undefined;
    }
    return perCycle * clock;
  }
  const n = typeof v === "string" || typeof v === "number" ? THROUGHPUT.parse(v) : undefined;
  if (n === undefined || n === 0) {
    ctx.addIssue({
      code: "custom",
      message:
        v === undefined
          ? `missing (expected a throughput like "13.5 GMAC/s")`
          : `expected a throughput like "13.5 GMAC/s", "27 GFLOPS" or { macsPerCycle: 168, clock: 200MHz }, got ${show(v)}${unitProblem(THROUGHPUT, v)}`,
      path,
    });
    return undefined;
  }
  return n;
}

/** Throughput of a device: one figure (float32) or a map by data type that includes float32. */
const THROUGHPUT_FIELD = z.unknown().transform((v, ctx) => {
  const isMap =
    v !== null && typeof v === "object" && !Array.isArray(v) && !("macsPerCycle" in (v as object));
  if (!isMap) {
    const n = throughputValue(v, [], ctx);
    return n === undefined ? z.NEVER : ({ float32: n } as Device["macsPerSecond"]);
  }
  const out: Partial<Record<DType, number>> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!(DTYPES as readonly string[]).includes(k)) {
      ctx.addIssue({ code: "custom", message: `unknown data type '${k}' (allowed: ${DTYPES.join(", ")})` });
      return z.NEVER;
    }
    const n = throughputValue(x, [k], ctx);
    if (n === undefined) return z.NEVER;
    out[k as DType] = n;
  }
  if (out.float32 === undefined) {
    ctx.addIssue({
      code: "custom",
      message: 'missing (expected a throughput like "13.5 GMAC/s")',
      path: ["float32"],
    });
    return z.NEVER;
  }
  return out as Device["macsPerSecond"];
});

/** CPUs as a list of numbers or a taskset-style string "0-3,6". */
const CPUS = z.unknown().transform((v, ctx) => {
  const fail = () => {
    ctx.addIssue({ code: "custom", message: `expected a CPU list like [0, 1] or "0-3", got ${show(v)}` });
    return z.NEVER;
  };
  if (Array.isArray(v)) {
    if (!v.every((c) => Number.isInteger(c) && c >= 0)) return fail();
    return v as number[];
  }
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? [v] : fail();
  if (typeof v !== "string") return fail();
  const out: number[] = [];
  for (const part of v.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) return fail();
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return fail();
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
});

const NAME = z.string().min(1, "expected a non-empty name");

const CORE_CLUSTER = z
  .strictObject({
    name: NAME,
    cores: z.int().min(1, "expected an integer >= 1"),
    throughput: z.unknown().transform((v, ctx) => throughputValue(v, [], ctx) ?? z.NEVER),
    activePower: unit(POWER).optional(),
  })
  .transform((c): CoreCluster => {
    const out: CoreCluster = { name: c.name, cores: c.cores, macsPerSecond: c.throughput };
    if (c.activePower !== undefined) out.activePower = c.activePower;
    return out;
  });

const DEVICE = z.strictObject({
  name: NAME,
  kind: z.enum(["cpu", "gpu", "npu", "accelerator", "browser"]),
  throughput: THROUGHPUT_FIELD,
  memoryBandwidth: unit(BANDWIDTH),
  memory: unit(BYTES),
  idlePower: unit(POWER),
  activePower: unit(POWER),
  coreClusters: z.array(CORE_CLUSTER).optional(),
  profile: z.string().min(1).optional(),
  endpoint: z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected "host:port" like "127.0.0.1:7001"')
    .optional(),
  cpus: CPUS.optional(),
  cpuShare: z.number().positive("expected a number > 0").optional(),
  threads: z.int().min(1, "expected an integer >= 1").optional(),
  host: z.string().min(1, "expected a host name").optional(),
  coRunSlowdown: z.number().min(1, "expected a factor >= 1").optional(),
  transferCpu: unit(TIME_PER_BYTE).optional(),
  coordinatorCpu: unit(TIME).optional(),
});

const LINK = z.strictObject({
  devices: z.array(NAME).min(2, "expected at least two device names"),
  kind: z.enum(["ethernet", "wifi", "ble", "usb", "chiplet", "loopback"]),
  bandwidth: unit(BANDWIDTH).refine((b) => b > 0, "expected a bandwidth > 0"),
  latency: unit(TIME),
  energyPerBit: unit(ENERGY_PER_BIT),
});

const CLUSTER = z.strictObject({
  name: NAME.optional(),
  devices: z.array(DEVICE).min(1, "expected at least one device"),
  links: z.array(LINK).default([]),
  inputDevice: NAME,
  outputDevice: NAME,
  /** Planner constraints, passed through unvalidated (the planner validates them). */
  constraints: z.record(z.string(), z.unknown()).optional(),
});
