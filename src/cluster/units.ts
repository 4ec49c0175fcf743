/**
 * Parsers for the human units of cluster files. Each returns the value in SI base units (bytes, bytes/s,
 * MAC/s, s, J/bit, W, Hz) or `undefined` when the text is not of that kind; the caller names the field.
 * A bare number (`bandwidth: 750`) is refused: it would silently mean base units (750 B/s) where the writer
 * almost always meant a datasheet unit. {@link unitProblem} says why a value was refused.
 */

/** A quantity kind and an example, used in error messages ("expected bytes like \"4GiB\""). */
export interface UnitKind {
  /** What the value is ("bytes", "a bandwidth"). */
  what: string;
  /** An example of a valid value. */
  example: string;
  /** Parses the value, or undefined when it is not valid. */
  parse(value: string | number): number | undefined;
}

const NUMBER = String.raw`([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)`;

const DECIMAL: Record<string, number> = { "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
const SMALL: Record<string, number> = {
  "": 1,
  m: 1e-3,
  u: 1e-6,
  µ: 1e-6,
  n: 1e-9,
  p: 1e-12,
  f: 1e-15,
  k: 1e3,
  M: 1e6,
  G: 1e9,
};

/** Splits "4 GiB" into [4, "GiB"]; undefined when it does not start with a number. */
function split(text: string): [number, string] | undefined {
  const m = new RegExp(`^\\s*${NUMBER}\\s*(.*?)\\s*$`).exec(text);
  if (!m) return undefined;
  return [Number(m[1]), m[2]];
}

/** Multiplier of a byte prefix ("", k, M, G, T, Ki, Mi, Gi, Ti). */
function bytePrefix(p: string): number | undefined {
  return BINARY[p] ?? DECIMAL[p];
}

function finiteNonNegative(n: number | undefined): number | undefined {
  return n !== undefined && Number.isFinite(n) && n >= 0 ? n : undefined;
}

function parseWith(value: string | number, fromText: (n: number, unit: string) => number | undefined) {
  if (typeof value === "number") return undefined;
  const s = split(value);
  if (!s) return undefined;
  return finiteNonNegative(fromText(s[0], s[1]));
}

/** Bytes: "4GiB", "512MB", "64 KiB", "100B" (decimal k/M/G = 10^3n, binary Ki/Mi/Gi = 2^10n). */
export const BYTES: UnitKind = {
  what: "bytes",
  example: "4GiB",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^([kKMGTP]i?|)B$/.exec(u);
      const mult = m ? bytePrefix(m[1]) : undefined;
      return mult === undefined ? undefined : n * mult;
    }),
};

/** Bandwidth in bytes/s: "1Gbit/s", "100Mbps", "1 Gb/s" (bits, decimal prefixes) or "50MB/s", "10GiB/s" (bytes). */
export const BANDWIDTH: UnitKind = {
  what: "a bandwidth",
  example: "1Gbit/s",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const bits = /^([kKMGT]?)(?:bit\/s|bps|b\/s)$/.exec(u);
      if (bits) return (n * DECIMAL[bits[1]]) / 8;
      const bytes = /^([kKMGT]i?|)(?:B\/s|Bps)$/.exec(u);
      const mult = bytes ? bytePrefix(bytes[1]) : undefined;
      return mult === undefined ? undefined : n * mult;
    }),
};

/**
 * Compute throughput in MAC/s: "13.5 GMAC/s", "13.5 GMACs", or operations "27 GFLOPS", "100 TOPS",
 * "27 GOP/s" (an operation is half a multiply-accumulate, the usual convention for FLOPS and TOPS).
 */
export const THROUGHPUT: UnitKind = {
  what: "a throughput",
  example: "13.5 GMAC/s",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const mac = /^([kKMGTP]?)MAC(?:\/s|s)$/.exec(u);
      if (mac) return n * DECIMAL[mac[1]];
      const ops = /^([kKMGTP]?)(?:FLOPS|FLOP\/s|OPS|OP\/s)$/.exec(u);
      if (ops) return (n * DECIMAL[ops[1]]) / 2;
      return undefined;
    }),
};

/** Time in s: "0.2ms", "50us", "50µs", "1s", "100ns". */
export const TIME: UnitKind = {
  what: "a time",
  example: "0.2ms",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^(m|u|µ|n|)s$/.exec(u);
      return m ? n * SMALL[m[1]] : undefined;
    }),
};

/** Energy per bit in J/bit: "5nJ/bit", "20 pJ/bit", "5nJ/b". */
export const ENERGY_PER_BIT: UnitKind = {
  what: "an energy per bit",
  example: "5nJ/bit",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^(m|u|µ|n|p|f|)J\/(?:bit|b)$/.exec(u);
      return m ? n * SMALL[m[1]] : undefined;
    }),
};

/** CPU time per byte moved, s/byte: "1.3ns/B", "0.5 ns/byte". */
export const TIME_PER_BYTE: UnitKind = {
  what: "a CPU time per byte",
  example: "1.3ns/B",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^(m|u|µ|n|p|)s\/(?:B|byte)$/.exec(u);
      return m ? n * SMALL[m[1]] : undefined;
    }),
};

/** Power in W: "6.4W", "500mW", "15 W". */
export const POWER: UnitKind = {
  what: "a power",
  example: "6.4W",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^(m|u|µ|k|)W$/.exec(u);
      return m ? n * SMALL[m[1]] : undefined;
    }),
};

/** Frequency in Hz: "200MHz", "1.5 GHz", "32kHz". */
export const FREQUENCY: UnitKind = {
  what: "a frequency",
  example: "200MHz",
  parse: (v) =>
    parseWith(v, (n, u) => {
      const m = /^([kKMG]?)Hz$/.exec(u);
      return m ? n * DECIMAL[m[1]] : undefined;
    }),
};

const SIGNED = new RegExp(`^\\s*([-+]?)${NUMBER}\\s*(.*?)\\s*$`);

/**
 * Why `value` is not a valid `kind`, as a parenthesised hint for an error message (` (no unit: ...)`,
 * ` (negative)`, ` (unknown unit "GQ")`), or "" when there is nothing more precise to say.
 */
export function unitProblem(kind: UnitKind, value: unknown): string {
  if (typeof value === "number") return ` (a number without a unit: write the unit, like "${kind.example}")`;
  if (typeof value !== "string") return "";
  const m = SIGNED.exec(value);
  if (!m) return "";
  const [, sign, digits, unit] = m;
  if (unit === "") return ` (no unit: write the unit, like "${kind.example}")`;
  if (kind.parse(`${digits}${unit}`) === undefined) return ` (unknown unit "${unit}")`;
  if (sign === "-" && Number(digits) !== 0) return " (negative: expected a value >= 0)";
  return "";
}

/** Bytes as B/KiB/MiB/GiB with 3 significant digits. */
export function fmtBytes(b: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = b;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  // Per-inference bytes over a share of the requests need not be whole.
  if (u === 0) return `${Number.isInteger(v) ? v : Number(v.toPrecision(3))} B`;
  return `${v.toPrecision(3)} ${units[u]}`;
}
