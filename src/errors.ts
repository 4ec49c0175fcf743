/**
 * Errors cleave raises for problems a user can fix (bad file, bad flag, bad cluster, bad model).
 * Each carries a stable string `code` and the context that locates the fault; the CLI prints
 * `error: <message>` as one line and exits non-zero. Anything that is not a CleaveError is a bug.
 */
export type ErrorCode =
  | "FILE_NOT_FOUND"
  | "FILE_UNREADABLE"
  | "FILE_UNWRITABLE"
  | "NOT_ONNX"
  | "INVALID_GRAPH"
  | "SHAPE_INFERENCE"
  | "BAD_ARGUMENT"
  | "BAD_CONFIG"
  | "BAD_CUT"
  | "INFEASIBLE"
  | "RUNTIME"
  | "WORKER"
  | "UNKNOWN_MODEL";

/** Where an error points: a file, a graph node or tensor, a device, or a field path in a config. */
export interface ErrorContext {
  file?: string;
  node?: string;
  tensor?: string;
  device?: string;
  field?: string;
  stage?: number;
}

/** Base class of every error cleave raises on purpose. */
export class CleaveError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CleaveError";
    this.code = code;
    this.context = context;
  }
}

/** The model file is missing, unreadable, not ONNX, or its graph is invalid. */
export class ModelError extends CleaveError {
  override name = "ModelError";
}

/** A command-line flag, API argument or config field is wrong. */
export class ArgumentError extends CleaveError {
  override name = "ArgumentError";
  constructor(message: string, context: ErrorContext = {}, code: ErrorCode = "BAD_ARGUMENT") {
    super(code, message, context);
  }
}

/** A worker, transport or inference session failed at run time. */
export class RuntimeFault extends CleaveError {
  override name = "RuntimeFault";
}

/** Best-effort message of an unknown thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
