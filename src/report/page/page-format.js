// cleave report, client side: formatting helpers and the colours shared by every section.
// Runs in the browser as a classic script; everything hangs off window.CleaveReport.
window.CleaveReport = window.CleaveReport || {};
((R) => {
  // Tableau 10: distinct, colour-blind-friendlier than the defaults, readable with white text.
  const STAGE_COLORS = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#b07aa1",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
  ];

  R.CUT_COLOR = "#d6336c";
  R.IO_COLOR = "#98a2b3";

  /** Colour of stage i (-1: the input device). */
  R.stageColor = (i) => (i < 0 ? R.IO_COLOR : STAGE_COLORS[i % STAGE_COLORS.length]);

  /** Colour with alpha from a #rrggbb colour. */
  R.alpha = (hex, a) => {
    const n = Number.parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  };

  /** Seconds as us / ms / s with 3 significant digits. */
  R.fmtTime = (s) => {
    if (s === undefined || s === null || Number.isNaN(s)) return "–";
    if (!Number.isFinite(s)) return "∞";
    const a = Math.abs(s);
    if (a === 0) return "0 ms";
    if (a < 1e-3) return `${(s * 1e6).toPrecision(3)} µs`;
    if (a < 1) return `${(s * 1e3).toPrecision(3)} ms`;
    return `${s.toPrecision(3)} s`;
  };

  /** Milliseconds with 3 significant digits (for chart axes that are in ms). */
  R.ms = (s) => s * 1e3;

  /** Bytes as B / KiB / MiB / GiB. */
  R.fmtBytes = (b) => {
    if (b === undefined || b === null || Number.isNaN(b)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = b;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return u === 0 ? `${v} B` : `${v.toPrecision(3)} ${units[u]}`;
  };

  /** A count with k / M / G suffix. */
  R.fmtCount = (n) => {
    const a = Math.abs(n);
    if (a >= 1e9) return `${(n / 1e9).toPrecision(3)} G`;
    if (a >= 1e6) return `${(n / 1e6).toPrecision(3)} M`;
    if (a >= 1e3) return `${(n / 1e3).toPrecision(3)} k`;
    return String(n);
  };

  /** Requests per second. */
  R.fmtRate = (r) => (Number.isFinite(r) ? `${r.toPrecision(3)}/s` : "–");

  /** Energy in J / mJ / µJ. */
  R.fmtEnergy = (j) => {
    if (j === undefined || j === null || !Number.isFinite(j)) return "–";
    const a = Math.abs(j);
    if (a === 0) return "0 J";
    if (a < 1e-3) return `${(j * 1e6).toPrecision(3)} µJ`;
    if (a < 1) return `${(j * 1e3).toPrecision(3)} mJ`;
    return `${j.toPrecision(3)} J`;
  };

  /** A ratio as 1.23x (as the terminal shows it: runtime's fmtRatio). */
  R.fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(r >= 10 ? 1 : 2)}x` : "–");

  /**
   * A prediction's error, (predicted - measured) / measured, as a signed percentage: the definition and the
   * format of the terminal and the JSON (runtime's predictionError and fmtPercent).
   */
  R.fmtError = (predicted, measured) => {
    if (!Number.isFinite(predicted) || !Number.isFinite(measured) || measured <= 0) return "–";
    const d = (100 * (predicted - measured)) / measured;
    return `${d >= 0 ? "+" : "-"}${Math.abs(d).toFixed(1)}%`;
  };

  /** A shape as 1×3×224×224. */
  R.fmtShape = (shape) => (shape.length === 0 ? "scalar" : shape.join("×"));

  /** HTML-escapes text. */
  R.esc = (s) =>
    String(s).replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
    );

  /** Stage label "S1 · device". */
  R.stageLabel = (data, i) => {
    const s = data.stages[i];
    return `S${i + 1} · ${s.replicas ? s.replicas.map((r) => r.device).join("+") : s.device}`;
  };
  /** A stage's device, or its replica group with each replica's share of the requests (HTML). */
  R.stageDevices = (s) =>
    s.replicas
      ? s.replicas
          .map((r) => `${R.esc(r.device)} <span class="tensor">${(100 * r.share).toFixed(0)}%</span>`)
          .join(" + ")
      : R.esc(s.device);

  /** Index of a device by name. */
  R.deviceIndex = (data, name) => data.devices.findIndex((d) => d.name === name);

  /** Viridis-like colour for t in [0, 1] (energy colour scale). */
  const VIRIDIS = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"];
  R.viridis = (t) => {
    const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - i;
    const a = Number.parseInt(VIRIDIS[i].slice(1), 16);
    const b = Number.parseInt(VIRIDIS[i + 1].slice(1), 16);
    const mix = (s) => Math.round(((a >> s) & 255) * (1 - f) + ((b >> s) & 255) * f);
    return `rgb(${mix(16)}, ${mix(8)}, ${mix(0)})`;
  };
  R.VIRIDIS = VIRIDIS;
})(window.CleaveReport);
