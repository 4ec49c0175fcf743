import { fmtBytes } from "../cluster/units.js";
import { formatFidelity } from "../partition/calibrate.js";
import { formatBudget } from "../partition/encodings.js";
import type { PlanEncodings } from "../partition/plan-encodings.js";

/** What the report shows of a plan made under a fidelity budget: its encodings and the plan's own totals. */
export interface ReportEncodings {
  encodings: PlanEncodings;
  /** The plan's predicted throughput (/s) and latency (s), set beside the best float32 plan's. */
  plan: { throughput: number; latency: number };
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The report's section on compressed cuts (server-rendered HTML, no script needed): each encoded cut tensor
 * with its bytes per inference as float32 and as sent, the budget, where the calibration inputs came from, the
 * fidelity measured at the model's outputs on calibration and held-out inputs, and the best float32 plan.
 */
export function renderEncodingsSection(r: ReportEncodings): string {
  const e = r.encodings;
  const rows = e.tensors
    .map(
      (t) =>
        `<tr><td>${esc(t.tensor)}</td><td>${esc(t.encoding)}</td><td class="num">${fmtBytes(t.bytes)}</td>` +
        `<td class="num">${fmtBytes(t.encodedBytes)}</td><td class="num">${(t.bytes / Math.max(1, t.encodedBytes)).toFixed(1)}x</td></tr>`,
    )
    .join("");
  const tensors =
    e.tensors.length > 0
      ? `<table class="data" id="encodings-table"><tr><th>cut tensor</th><th>encoding</th><th>float32</th><th>sent</th><th>smaller</th></tr>${rows}</table>`
      : `<p class="lede" id="encodings-table">Every cut tensor stays float32: no encoding paid or met the budget.</p>`;
  const calibration =
    e.calibration === "generated"
      ? "generated (seeded random inputs: give <code>--calibration</code> files for real ones)"
      : "given (the user's files)";
  const fidelity = (label: string, f: PlanEncodings["fidelity"]["held"]) =>
    `<tr><td>${label}</td><td>${esc(formatFidelity(f))}</td></tr>`;
  const f32 = e.float32
    ? `<p class="lede" id="encodings-float32">Best float32 plan: ${e.float32.throughput.toPrecision(3)}/s, ${(e.float32.latency * 1e3).toFixed(1)} ms; this plan: ${r.plan.throughput.toPrecision(3)}/s, ${(r.plan.latency * 1e3).toFixed(1)} ms.</p>`
    : "";
  return `<section class="card" id="sec-encodings">
    <h2>Compressed cuts</h2>
    <p class="lede">Planned under the fidelity budget <b>${esc(formatBudget(e.budget))}</b>: cut tensors sent encoded, bytes per inference. Calibration inputs ${calibration}: ${e.inputs.calibration} to calibrate, ${e.inputs.held} held out.${e.classifier ? "" : " The outputs are not [N, classes] logits, so top-1/top-5 do not apply."}</p>
    ${tensors}
    <table class="data" id="encodings-fidelity"><tr><th>measured at the outputs against float32</th><th></th></tr>${fidelity("calibration inputs", e.fidelity.calibration)}${fidelity("held-out inputs", e.fidelity.held)}</table>
    ${f32}
  </section>`;
}
