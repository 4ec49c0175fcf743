import { readFileSync } from "node:fs";
import { ArgumentError } from "../errors.js";

/** A NumPy array read from a `.npy` file: its shape and elements as numbers (row-major). */
export interface NpyArray {
  /** NumPy's dtype descriptor, such as `<f4` or `<i8`. */
  descr: string;
  shape: number[];
  data: number[];
}

const READERS: Record<string, [number, (dv: DataView, off: number) => number]> = {
  "<f4": [4, (dv, o) => dv.getFloat32(o, true)],
  "<f8": [8, (dv, o) => dv.getFloat64(o, true)],
  "|i1": [1, (dv, o) => dv.getInt8(o)],
  "|u1": [1, (dv, o) => dv.getUint8(o)],
  "|b1": [1, (dv, o) => dv.getUint8(o)],
  "<i2": [2, (dv, o) => dv.getInt16(o, true)],
  "<u2": [2, (dv, o) => dv.getUint16(o, true)],
  "<i4": [4, (dv, o) => dv.getInt32(o, true)],
  "<u4": [4, (dv, o) => dv.getUint32(o, true)],
  "<i8": [8, (dv, o) => Number(dv.getBigInt64(o, true))],
  "<u8": [8, (dv, o) => Number(dv.getBigUint64(o, true))],
};

/**
 * Reads a `.npy` file (format versions 1-3, little-endian numeric dtypes, C order). Anything else is an
 * ArgumentError naming the file.
 */
export function readNpy(file: string): NpyArray {
  const bad = (why: string) =>
    new ArgumentError(`${file}: not a .npy array cleave can read (${why})`, { file });
  const buf = readFileSync(file);
  if (buf.length < 10 || buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw bad("no NumPy magic");
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad("malformed header");
  if (fortran === "True") throw bad("Fortran order; save it with np.ascontiguousarray");
  const reader = READERS[descr];
  if (!reader) throw bad(`dtype '${descr}'`);
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const [size, read] = reader;
  const off = start + headerLen;
  if (buf.length < off + n * size) throw bad(`${n} elements of ${size} bytes do not fit in the file`);
  const dv = new DataView(buf.buffer, buf.byteOffset + off, n * size);
  const data = new Array<number>(n);
  for (let i = 0; i < n; i++) data[i] = read(dv, i * size);
  return { descr, shape, data };
}
