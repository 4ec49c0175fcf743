import { availableParallelism } from "node:os";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { ArgumentError } from "../errors.js";
import { type InputValue, parseInputValue, readInputsFiles } from "../ir/input-values.js";
import type { Plan } from "../partition/plan.js";

/** One `cleave <name>` subcommand. */
export interface Command {
  name: string;
  /** One line for `cleave --help`. */
  summary: string;
  /** Full usage text for `cleave <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[], io: CliIO): Promise<number>;
}

/** Where commands write; tests pass their own. */
export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stdout is a terminal (colour, progress bars). */
  isTTY: boolean;
}

/** The real process streams. */
export const processIO: CliIO = {
  out: (t) => process.stdout.write(t.endsWith("\n") ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith("\n") ? t : `${t}\n`),
  isTTY: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
};

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flags: option values by name, and the positional arguments. */
export interface ParsedFlags {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses flags with node's parseArgs, turning its errors into one-line ArgumentErrors that name the
 * command. Positionals are allowed; `--help` is always accepted.
 */
export function parseFlags(cmd: string, argv: string[], options: Options): ParsedFlags {
  try {
    const r = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as ParsedFlags["values"], positionals: r.positionals };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new ArgumentError(`cleave ${cmd}: ${msg.replace(/\. To specify a positional.*$/, "")}`);
  }
}

/** Parses an integer flag in [min, max], naming the flag when it is not one. */
export function intFlag(
  name: string,
  value: string | undefined,
  def: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return def;
  const n = /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new ArgumentError(`--${name}: expected an integer >= ${min}, got '${value}'`, { field: name });
  if (n > max)
    throw new ArgumentError(`--${name}: expected an integer <= ${max}, got '${value}'`, { field: name });
  return n;
}

/**
 * Parses `--threads` for onnxruntime on this machine: 1 to this machine's CPU count (more threads than CPUs
 * only contend, and a huge count makes onnxruntime allocate a pool per thread for minutes).
 */
export function threadsFlag(value: string | undefined, def = 1): number {
  const cpus = availableParallelism();
  if (value !== undefined && Number(value) > cpus)
    throw new ArgumentError(`--threads: at most ${cpus} (the CPUs of this machine), got '${value}'`, {
      field: "threads",
    });
  return intFlag("threads", value, def, 1, cpus);
}

/**
 * Most elements one `--input-shape` tensor may have: 2^31 - 1 (8 GiB of float32), beyond what cleave can
 * allocate (Node buffers stop at 4 GiB) or send (256 MiB frames); larger shapes ended in a RangeError.
 */
export const MAX_INPUT_ELEMENTS = 2 ** 31 - 1;

/** Parses a finite number flag, naming the flag when it is not one. */
export function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n))
    throw new ArgumentError(`--${name}: expected a number, got '${value}'`, { field: name });
  return n;
}

/**
 * Parses `--input-shape` values `name=1x3x224x224` (repeatable, or comma-separated) into a map.
 */
export function parseInputShapes(values: string[] | undefined): Record<string, number[]> | undefined {
  if (!values || values.length === 0) return undefined;
  const out: Record<string, number[]> = {};
  for (const item of values.flatMap((v) => v.split(","))) {
    const m = /^(.+)=(\d+(?:x\d+)*)$/.exec(item.trim());
    if (!m)
      throw new ArgumentError(`--input-shape: expected name=1x3x224x224, got '${item}'`, {
        field: "input-shape",
      });
    const dims = m[2].split("x").map(Number);
    const elements = dims.reduce((p, d) => p * d, 1);
    if (!dims.every(Number.isSafeInteger) || elements > MAX_INPUT_ELEMENTS)
      throw new ArgumentError(
        `--input-shape: '${item.trim()}' has ${elements.toPrecision(3)} elements, more than the ${MAX_INPUT_ELEMENTS} one input may have`,
        { field: "input-shape", tensor: m[1] },
      );
    out[m[1]] = dims;
  }
  return out;
}

/** Flags of every command that loads a model: shapes and values of its inputs. */
export const MODEL_INPUT_FLAGS = {
  "input-shape": { type: "string", multiple: true },
  "input-value": { type: "string", multiple: true },
  inputs: { type: "string", multiple: true },
} as const satisfies Options;

/** Usage lines of {@link MODEL_INPUT_FLAGS}, kept beside them. */
export const MODEL_INPUT_USAGE = `  --input-shape name=1x3x224x224   fix symbolic input dimensions (repeatable); a lone batch dimension defaults to 1
  --input-value name=16000         an input's value: a number or a list like [1,2,3] (repeatable); decides If
                                   conditions and is fed wherever the model runs (integer inputs default to zeros)
  --inputs file.json | name=x.npy  values of every input from a JSON object of name to nested lists, or one
                                   .npy file per input`;

/** Shapes and values of a model's inputs, as the model-input flags give them. */
export interface ModelInputs {
  inputShapes?: Record<string, number[]>;
  inputValues?: Record<string, InputValue>;
}

/**
 * Parses `--input-shape`, `--input-value` and `--inputs`; values from `--input-value` win over `--inputs`
 * files. `fallback` (a plan's recorded inputs) fills what the flags leave out.
 */
export function modelInputs(values: ParsedFlags["values"], fallback: ModelInputs = {}): ModelInputs {
  const inputShapes = parseInputShapes(list(values, "input-shape")) ?? fallback.inputShapes;
  const files = list(values, "inputs");
  const items = list(values, "input-value");
  const given: Record<string, InputValue> = files ? readInputsFiles(files) : {};
  for (const item of items ?? []) {
    const [name, v] = parseInputValue(item);
    given[name] = v;
  }
  const inputValues = files || items ? given : fallback.inputValues;
  return {
    ...(inputShapes ? { inputShapes } : {}),
    ...(inputValues ? { inputValues } : {}),
  };
}

/** The input shapes and values a plan was made with, as {@link modelInputs} takes them. */
export function planInputs(plan: Plan, file = "plan"): ModelInputs {
  return {
    ...(plan.inputShapes ? { inputShapes: plan.inputShapes } : {}),
    ...(plan.inputValues
      ? {
          inputValues: Object.fromEntries(
            Object.entries(plan.inputValues).map(([k, v]) => [
              k,
              { ...v, origin: `${file}: input value '${k}'` },
            ]),
          ),
        }
      : {}),
  };
}

/** The one positional argument a command needs, or an ArgumentError saying which. */
export function onePositional(cmd: string, positionals: string[], what: string): string {
  if (positionals.length === 0)
    throw new ArgumentError(`cleave ${cmd}: missing ${what} (see cleave ${cmd} --help)`);
  if (positionals.length > 1)
    throw new ArgumentError(`cleave ${cmd}: unexpected argument '${positionals[1]}'`);
  return positionals[0];
}

/** A string flag's value (undefined when absent); throws when given as a boolean or list by mistake. */
export function str(values: ParsedFlags["values"], name: string): string | undefined {
  const v = values[name];
  if (v === undefined || typeof v === "string") return v;
  if (Array.isArray(v)) return v[v.length - 1];
  throw new ArgumentError(`--${name}: expected a value`, { field: name });
}

/** A repeatable string flag's values. */
export function list(values: ParsedFlags["values"], name: string): string[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v : [String(v)];
}

/** A boolean flag. */
export function bool(values: ParsedFlags["values"], name: string): boolean {
  return values[name] === true;
}
