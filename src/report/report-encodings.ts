import { fmtBytes } from "../cluster/units.js";
import type { ReportEncodings, ReportFidelity } from "./report-data.js";

/** Escapes text for an HTML text node or attribute. */
function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

const pct = (v: number | undefined) => (v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);

/**
 * The "Compressed cuts" section of a plan made under a fidelity budget, rendered here (static HTML, no script):
 * each encoded cut tensor with its bytes as float32 and as sent, the budget, where the calibration inputs came
 * from, and the fidelity measured at the outputs on calibration and held-out inputs.
 */
export function renderEncodingsSection(e: ReportEncodings): string {
  const tensors =
    e.tensors.length === 0
      ? `<tr><td colspan="5">every cut tensor stays float32 (no encoding paid or met the budget)</td></tr>`
      : e.tensors
          .map(
            (t) =>
              `<tr data-encoded="${esc(t.tensor)}"><td>${esc(t.tensor)}</td><td>${esc(t.encoding)}</td>` +
              `<td class="num">${fmtBytes(t.bytes)}</td><td class="num" data-field="sent">${fmtBytes(t.encodedBytes)}</td>` +
              `<td class="num">${(t.bytes / (t.encodedBytes || 1)).toFixed(1)}x</td></tr>`,
          )
          .join("");
  const row = (label: string, which: string, f: ReportFidelity) =>
    `<tr data-fidelity="${which}"><td>${label}</td><td class="num">${f.maxRelError.toExponential(2)}</td>` +
    `<td class="num">${f.meanRelError.toExponential(2)}</td>` +
    (e.classifier ? `<td class="num">${pct(f.top1)}</td><td class="num">${pct(f.top5)}</td>` : "") +
    `<td class="num">${f.samples}</td></tr>`;
  const source =
    e.calibration === "generated"
      ? "generated (seeded random inputs: plan with --calibration for real ones)"
      : "given as files";
  return `<section class="card" id="sec-encodings">
    <h2>Compressed cuts</h2>
    <p class="lede">The plan sends these cut tensors encoded, under the fidelity budget <b data-field="budget">${esc(e.budget)}</b>. Calibration inputs: <span data-field="calibration">${source}</span> (${e.inputs.calibration} calibrating, ${e.inputs.held} held out).${e.classifier ? "" : " The outputs are not [N, classes] logits, so top-1/top-5 do not apply."}</p>
    <table class="data" id="encoding-table"><thead><tr><th>Cut tensor</th><th>Encoding</th><th class="num">float32</th><th class="num">Sent</th><th class="num">Ratio</th></tr></thead><tbody>${tensors}</tbody></table>
    <p class="lede" style="margin-top:8px">Fidelity of the plan's encodings together, measured at the model's outputs against float32:</p>
    <table class="data" id="fidelity-table"><thead><tr><th>Inputs</th><th class="num">Max rel. error</th><th class="num">Mean rel. error</th>${e.classifier ? `<th class="num">Top-1 agree</th><th class="num">Top-5 agree</th>` : ""}<th class="num">Samples</th></tr></thead><tbody>${row("calibration", "calibration", e.fidelity.calibration)}${row("held out", "held", e.fidelity.held)}</tbody></table>
  </section>`;
}
