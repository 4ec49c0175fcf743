/** Human-readable figures and aligned tables for terminal output. */

export { fmtBytes } from "../cluster/units.js";

/** A count with k/M/G suffix (1,234,567 -> 1.23M). */
export function fmtCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(n / 1e3).toPrecision(3)}k`;
  return String(n);
}

/** A duration given in seconds, shown in us/ms/s. */
export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "inf";
  if (s < 1e-3) return `${(s * 1e6).toPrecision(3)} us`;
  if (s < 1) return `${(s * 1e3).toPrecision(3)} ms`;
  return `${s.toPrecision(3)} s`;
}

/** A shape as 1x3x224x224 ("scalar" for rank 0). */
export function fmtShape(shape: readonly number[]): string {
  return shape.length === 0 ? "scalar" : shape.join("x");
}

/** Colours applied only when enabled (a TTY without NO_COLOR). */
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  cyan(s: string): string;
  yellow(s: string): string;
}

/** ANSI styles when `on`, identity otherwise. */
export function style(on: boolean): Style {
  const wrap = (a: number, b: number) => (s: string) => (on ? `\x1b[${a}m${s}\x1b[${b}m` : s);
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    green: wrap(32, 39),
    red: wrap(31, 39),
    cyan: wrap(36, 39),
    yellow: wrap(33, 39),
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences are what this strips.
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * An aligned table: first row is the header. Columns whose cells all look numeric are right-aligned.
 * Cells may carry ANSI colour; widths ignore it.
 */
export function table(rows: readonly (readonly string[])[], st: Style = style(false)): string {
  if (rows.length === 0) return "";
  const width = (s: string) => s.replace(ANSI, "").length;
  const ncol = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: ncol }, (_, c) => Math.max(...rows.map((r) => width(r[c] ?? ""))));
  const numeric = Array.from({ length: ncol }, (_, c) =>
    rows
      .slice(1)
      .every((r) => /^[-+]?[\d.,]+(\s?[a-zA-Z%/]+)?x?$|^-$|^$/.test((r[c] ?? "").replace(ANSI, ""))),
  );
  const fmt = (r: readonly string[]) =>
    r
      .map((cell, c) => {
        const pad = " ".repeat(widths[c] - width(cell));
        return numeric[c] ? pad + cell : cell + pad;
      })
      .join("  ")
      .trimEnd();
  return [st.bold(fmt(rows[0])), ...rows.slice(1).map(fmt)].join("\n");
}

/**
 * A replica group as `a+b`, with each device's share of the requests when there are several: `a+b (shares
 * 50%/50%)`; past four devices the first three and the count (`a+b+c+... (9 replicas)`).
 */
export function fmtGroup(devices: readonly string[], shares?: readonly number[]): string {
  if (devices.length > 4) return `${devices.slice(0, 3).join("+")}+... (${devices.length} replicas)`;
  const names = devices.join("+");
  if (devices.length < 2 || !shares) return names;
  return `${names} (shares ${shares.map((s) => `${(100 * s).toFixed(0)}%`).join("/")})`;
}
