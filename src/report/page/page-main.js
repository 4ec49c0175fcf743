// cleave report, client side: reads the embedded data, fills the header and tables, draws the charts and
// the graph, then marks the page ready (html[data-ready]) for tests and benchmarks.
window.CleaveReport = window.CleaveReport || {};
((R) => {
  const $ = (id) => document.getElementById(id);

  /** The best single-device baseline (highest throughput among those that fit), if any. */
  function bestSingle(data) {
    const single = data.baselines.filter((b) => b.singleDevice !== undefined && b.feasible);
    return single.sort((a, b) => b.throughput - a.throughput)[0];
  }

  function benchOf(data, name) {
    return data.bench?.configurations.find((c) => c.name === name);
  }

  function kpi(label, value, detail, cls, field) {
    return (
      `<div class="kpi" data-kpi="${field}"><div class="label">${label}</div>` +
      `<div class="value ${cls ?? ""}">${value}</div><div class="detail">${detail ?? "&nbsp;"}</div></div>`
    );
  }

  function renderHeader(data) {
    const m = data.model;
    $("title").textContent = data.title;
    document.title = `${data.title} · cleave report`;
    const devices = [...new Set(data.stages.map((s) => s.device))];
    $("subtitle").textContent =
      `${m.nodes} compute nodes · ${R.fmtCount(m.macs)}MACs · ${R.fmtCount(m.params)} params (${R.fmtBytes(m.paramBytes)})` +
      ` · ${data.stages.length} stage${data.stages.length === 1 ? "" : "s"} on ${devices.join(", ")}` +
      (data.plan.planner ? ` · planner ${data.plan.planner}` : "") +
      (data.plan.objective ? ` (${data.plan.objective})` : "");
    const measured = benchOf(data, "plan");
    const best = bestSingle(data);
    const cards = [];
    // Like with like: the predicted latency is that of one request alone, so it is set beside requests
    // measured one at a time; the loaded p50 (requests queued behind each other) only as context.
    const alone = measured?.aloneLatency;
    const latencyDetail = !measured
      ? "predicted, one request alone"
      : alone
        ? `measured alone p50 ${R.fmtTime(alone.p50)} (prediction ${R.fmtError(data.plan.latency, alone.p50)}) · ` +
          `pipeline full p50 ${R.fmtTime(measured.latency.p50)}`
        : `pipeline full p50 ${R.fmtTime(measured.latency.p50)} (requests queued: not comparable)`;
    cards.push(kpi("Latency per request", R.fmtTime(data.plan.latency), latencyDetail, "", "latency"));
    cards.push(
      kpi(
        "Throughput",
        R.fmtRate(data.plan.throughput),
        measured
          ? `measured pipelined ${R.fmtRate(measured.throughput)} (prediction ${R.fmtError(data.plan.throughput, measured.throughput)})`
          : "predicted, pipelined",
        "",
        "throughput",
      ),
    );
    if (best) {
      const speed = data.plan.throughput / best.throughput;
      const mp = benchOf(data, "plan");
      const mb = benchOf(data, best.name);
      // The bench's own figure when it recorded one (the same number its terminal output and JSON show).
      const ms = data.bench?.speedup ?? (mp && mb ? mp.throughput / mb.throughput : undefined);
      const measuredSpeed = ms !== undefined ? ` · measured ${R.fmtRatio(ms)}` : "";
      cards.push(
        kpi(
          "Speed-up vs best single device",
          R.fmtRatio(speed),
          `throughput vs ${R.esc(best.singleDevice)}; latency ${R.fmtRatio(best.latency / data.plan.latency)}${measuredSpeed}`,
          speed >= 1 ? "good" : "bad",
          "speedup",
        ),
      );
    }
    cards.push(
      kpi(
        "Energy per request",
        R.fmtEnergy(data.plan.energy),
        best
          ? `${R.fmtRatio(best.energy / data.plan.energy)} less than ${R.esc(best.singleDevice)}`
          : "predicted",
        "",
        "energy",
      ),
    );
    $("kpis").innerHTML = cards.join("");
    $("notes").innerHTML =
      (data.bench?.findings ?? []).map((f) => `<li class="finding">${R.esc(f)}</li>`).join("") +
      data.notes.map((n) => `<li>${R.esc(n)}</li>`).join("");
    $("generator").textContent = `${data.generator} · model ${data.model.source} · ${data.model.order} order`;
  }

  function ratioCell(r) {
    if (!Number.isFinite(r)) return `<td class="num">–</td>`;
    const cls = r > 1.005 ? "better" : r < 0.995 ? "worse" : "";
    return `<td class="num"><span class="ratio ${cls}">${R.fmtRatio(r)}</span></td>`;
  }

  function renderStages(data) {
    const plan = benchOf(data, "plan");
    const measuredSteps = data.timeline.measured?.steps;
    const rows = data.stages.map((s, i) => {
      const dev = data.devices[R.deviceIndex(data, s.device)];
      const first = data.nodes[s.start].name;
      const last = data.nodes[s.end - 1].name;
      const link = data.links.find((l) => l.fromStage === i);
      const sends = s.sends.length
        ? s.sends
            .map(
              (t) =>
                `<div class="tensor">${R.esc(t.name)} · ${R.fmtBytes(t.bytes)}` +
                (t.encoding ? ` → ${R.fmtBytes(t.sentBytes)} ${R.esc(t.encoding)}` : "") +
                "</div>",
            )
            .join("")
        : `<span class="tensor">–</span>`;
      const meas = measuredSteps?.find((st) => st.kind === "compute" && st.stage === i);
      return (
        `<tr data-stage="${i}"><td><span class="swatch" style="background:${R.stageColor(i)}"></span> S${i + 1}</td>` +
        `<td>${R.stageDevices(s)}</td>` +
        `<td><div>${s.start + 1}–${s.end} <span class="tensor">(${s.end - s.start})</span></div>` +
        `<div class="tensor">${R.esc(first)} … ${R.esc(last)}</div></td>` +
        `<td class="num">${R.fmtCount(s.macs)} <span class="tensor">${((100 * s.macs) / (data.model.macs || 1)).toFixed(1)}%</span></td>` +
        `<td class="num" data-field="latency">${R.fmtTime(s.latency)}</td>` +
        (plan ? `<td class="num">${meas ? R.fmtTime(meas.time) : "–"}</td>` : "") +
        `<td class="num">${R.fmtBytes(s.memory)} <span class="tensor">/ ${R.fmtBytes(dev.memory)}</span></td>` +
        `<td class="num">${R.fmtEnergy(s.energy)}</td>` +
        `<td>${sends}</td>` +
        `<td class="num">${link ? `${R.fmtTime(link.time)} <span class="tensor">→ ${R.esc(link.to)}</span>` : "–"}</td></tr>`
      );
    });
    const inLinks = data.links.filter((l) => l.fromStage === -1);
    $("stage-table").innerHTML =
      `<thead><tr><th>Stage</th><th>Device</th><th>Positions</th><th class="num">MACs</th><th class="num">Compute (pred.)</th>` +
      (plan ? `<th class="num">Compute (meas.)</th>` : "") +
      `<th class="num">Memory</th><th class="num">Energy</th><th>Sends</th><th class="num">Transfer</th></tr></thead>` +
      `<tbody>${rows.join("")}</tbody>`;
    $("stage-foot").textContent = inLinks.length
      ? `Input transfer: ${inLinks.map((l) => `${l.from} → ${l.to} ${R.fmtBytes(l.bytes)} in ${R.fmtTime(l.time)}`).join(", ")}.`
      : "";
  }

  function renderBaselines(data) {
    const bench = data.bench !== undefined;
    const alone = data.bench?.configurations.some((c) => c.aloneLatency !== undefined) ?? false;
    const row = (b, chosen) => {
      const m = benchOf(data, chosen ? "plan" : b.name);
      return (
        `<tr class="${chosen ? "chosen" : ""}" data-baseline="${R.esc(b.name)}"><td>${R.esc(b.name)}` +
        `${b.feasible === false ? ' <span class="pill">does not fit</span>' : ""}</td>` +
        `<td>${R.esc(b.description)}</td>` +
        `<td class="num">${R.fmtTime(b.latency)}</td><td class="num">${R.fmtRate(b.throughput)}</td>` +
        `<td class="num">${R.fmtEnergy(b.energy)}</td>` +
        ratioCell(b.latency / data.plan.latency) +
        ratioCell(data.plan.throughput / b.throughput) +
        ratioCell(b.energy / data.plan.energy) +
        (bench
          ? `<td class="num">${m ? R.fmtTime((m.aloneLatency ?? m.latency).p50) : "–"}</td><td class="num">${m ? R.fmtRate(m.throughput) : "–"}</td>`
          : "") +
        "</tr>"
      );
    };
    const plan = { ...data.plan, name: "plan", description: "this report's plan", feasible: true };
    $("baseline-table").innerHTML =
      `<thead><tr><th>Configuration</th><th>What it is</th><th class="num">Latency</th><th class="num">Throughput</th>` +
      `<th class="num">Energy</th><th class="num" title="baseline latency ÷ plan latency">Plan latency gain</th>` +
      `<th class="num" title="plan throughput ÷ baseline throughput">Plan throughput gain</th>` +
      `<th class="num" title="baseline energy ÷ plan energy">Plan energy saving</th>` +
      (bench
        ? `<th class="num" title="${alone ? "requests sent one at a time, as the latency is predicted" : "with the pipeline full"}">` +
          `Measured p50${alone ? " (alone)" : ""}</th><th class="num">Measured throughput</th>`
        : "") +
      `</tr></thead><tbody>${row(plan, true)}${data.baselines.map((b) => row(b, false)).join("")}</tbody>`;
  }

  function renderTimelineLede(data) {
    const steps = data.timeline.predicted.steps;
    const slow = steps.reduce((a, s) => (s.time > a.time ? s : a), steps[0]);
    $("timeline-lede").textContent =
      `${data.timeline.requests} back-to-back requests. Bars are compute per stage (solid) and transfers per link ` +
      `(outlined); the slowest step, ${slow.lane} at ${R.fmtTime(slow.time)}, sets the period.` +
      (data.timeline.measured ? " Measured rows use the per-stage times of the bench." : "");
  }

  R.main = () => {
    const t0 = performance.now();
    const data = JSON.parse($("report-data").textContent);
    R.data = data;
    renderHeader(data);
    renderStages(data);
    renderBaselines(data);
    renderTimelineLede(data);
    R.timings = { start: t0, tables: performance.now() };
    R.charts = R.renderCharts(data);
    R.timings.charts = performance.now();
    const graph = JSON.parse($("report-graph").textContent);
    R.renderGraph(data, graph, () => {
      // Ready once the laid-out graph has been painted (two frames: cytoscape draws on the next frame).
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          R.readyMs = performance.now() - t0;
          R.readyAt = performance.now();
          document.documentElement.dataset.ready = "true";
        }),
      );
    });
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", R.main);
  else R.main();
})(window.CleaveReport);
