import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CleaveError } from "./errors.js";

/** What can be written: text, bytes, or byte chunks written in order without concatenation. */
export type OutputData = string | Uint8Array | readonly Uint8Array[];

/** A short reason for a failed file operation ("no space left on the device"), from its errno code. */
function reason(err: unknown): string {
  if (err instanceof CleaveError && err.code === "FILE_UNWRITABLE") return reason(err.cause);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const known: Record<string, string> = {
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOTDIR: "a parent is not a folder",
    EISDIR: "is a folder",
    ENOENT: "no such folder",
    ENAMETOOLONG: "name too long",
    EFBIG: "file too large",
    EIO: "input/output error",
  };
  if (code !== undefined) return known[code] ?? code;
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/** The one-line error of an output file that cannot be written (code FILE_UNWRITABLE). */
function unwritable(path: string, why: string): CleaveError {
  return new CleaveError(
    "FILE_UNWRITABLE",
    `${path}: cannot write (${why})`,
    { file: path },
    {
      cause: new Error(why),
    },
  );
}

/**
 * The one-line error (code FILE_UNWRITABLE) for output `path` whose write failed with `err`: an errno error,
 * or the error of another output (a file inside the folder `path`), whose reason it keeps.
 */
export function outputError(path: string, err: unknown): CleaveError {
  return unwritable(path, reason(err));
}

/**
 * Checks, before any long work, that `path` can become an output file: it is not a folder and its parent
 * folder exists (or can be created) and is one. Throws the error {@link writeOutputFile} would.
 */
export function checkOutputFile(path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) throw unwritable(path, "is a folder");
  checkOutputFolder(dirname(resolve(path)), path);
}

/** Checks that `dir` is a folder or can be created as one (its nearest existing ancestor is a folder). */
export function checkOutputFolder(dir: string, named = dir): void {
  let d = resolve(dir);
  while (!existsSync(d)) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  if (!statSync(d).isDirectory()) throw unwritable(named, `${d} is not a folder`);
}

/**
 * Writes an output file atomically: the data goes to a temporary file beside `path`, is flushed to disk and
 * renamed over `path` only when complete, so a full disk or an interrupted write leaves `path` as it was and
 * no temporary file behind. Missing parent folders are created. A target that exists and is not a regular
 * file (`/dev/stdout`, a pipe) is written in place. Failures are one-line CleaveErrors (code
 * FILE_UNWRITABLE) naming the file. `mode` sets the permissions of a new file (e.g. 0o600 for one holding a
 * secret).
 */
export function writeOutputFile(path: string, data: OutputData, opts: { mode?: number } = {}): void {
  const chunks = typeof data === "string" ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
  const special = existsSync(path) && !statSync(path).isFile();
  if (special && statSync(path).isDirectory()) throw unwritable(path, "is a folder");
  if (special) {
    writeChunksTo(path, chunks, "w");
    return;
  }
  const dir = dirname(resolve(path));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw outputError(path, err);
  }
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    writeChunksTo(tmp, chunks, "wx", path, opts.mode);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw outputError(path, err);
  }
}

/** Writes chunks to `file` (opened with `flags`) and flushes it; errors name `shown`. */
function writeChunksTo(
  file: string,
  chunks: readonly Uint8Array[],
  flags: string,
  shown = file,
  mode?: number,
): void {
  let fd: number;
  try {
    fd = openSync(file, flags, mode);
  } catch (err) {
    throw outputError(shown, err);
  }
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    if (flags !== "w") fsyncSync(fd);
  } catch (err) {
    throw outputError(shown, err);
  } finally {
    closeSync(fd);
  }
}
