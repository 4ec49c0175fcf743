/** Short human figures for the planner's messages (the library cannot use cli/format). */

/** Seconds as us/ms/s, 3 significant digits. */
export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "inf";
  if (s < 1e-3) return `${(s * 1e6).toPrecision(3)} us`;
  if (s < 1) return `${(s * 1e3).toPrecision(3)} ms`;
  return `${s.toPrecision(3)} s`;
}

/** Bytes as B/KiB/MiB/GiB, 3 significant digits. */
export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return "inf";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = b;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toPrecision(3)} ${units[u]}`;
}

/** Energy as uJ/mJ/J, 3 significant digits. */
export function fmtJoules(j: number): string {
  if (!Number.isFinite(j)) return "inf";
  if (j < 1e-3) return `${(j * 1e6).toPrecision(3)} uJ`;
  if (j < 1) return `${(j * 1e3).toPrecision(3)} mJ`;
  return `${j.toPrecision(3)} J`;
}

/** Inferences per second, 3 significant digits. */
export function fmtRate(r: number): string {
  return Number.isFinite(r) ? `${r.toPrecision(3)}/s` : "inf/s";
}
