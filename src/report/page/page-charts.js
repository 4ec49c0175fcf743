// cleave report, client side: the charts (Chart.js with chartjs-plugin-annotation): per-layer cost, pipeline
// timeline, Pareto front and memory per device.
window.CleaveReport = window.CleaveReport || {};
((R) => {
  const GRID = "#eef0f4";
  const TICK = "#667085";

  function setDefaults() {
    const C = window.Chart;
    C.defaults.animation = false;
    C.defaults.maintainAspectRatio = false;
    C.defaults.font.family = getComputedStyle(document.body).fontFamily;
    C.defaults.font.size = 12;
    C.defaults.color = TICK;
    C.defaults.plugins.legend.labels.boxWidth = 12;
    C.defaults.plugins.legend.labels.boxHeight = 12;
    C.defaults.plugins.tooltip.backgroundColor = "#1d2330";
    C.defaults.plugins.tooltip.padding = 8;
    C.defaults.plugins.tooltip.cornerRadius = 6;
  }

  /** Line colour of a device: the colour of the first stage that runs on it, else a neutral one. */
  function deviceColor(data, name, i) {
    const s = data.stages.findIndex((st) => st.device === name);
    return s >= 0 ? R.stageColor(s) : ["#475467", "#98a2b3", "#344054", "#d0d5dd"][i % 4];
  }

  /** Chosen cut boundaries (stage starts after the first), as positions. */
  function chosenCuts(data) {
    return data.stages.slice(1).map((s) => s.start);
  }

  /** Per-layer latency on each device, MACs, and bytes crossing each boundary, along the partition order. */
  R.renderLayers = (data) => {
    const n = data.nodes.length;
    const annotations = {};
    // One band per stage on each stacked axis (an annotation spans one y scale); the top one is labelled.
    data.stages.forEach((s, i) => {
      for (const axis of ["lat", "macs", "bytes"]) {
        annotations[`stage${i}_${axis}`] = {
          type: "box",
          xMin: s.start + 0.5,
          xMax: s.end + 0.5,
          yScaleID: axis,
          backgroundColor: R.alpha(R.stageColor(i), 0.07),
          borderWidth: 0,
          drawTime: "beforeDatasetsDraw",
          label: {
            display: axis === "lat",
            content: R.stageLabel(data, i),
            position: { x: "center", y: "start" },
            color: R.stageColor(i),
            font: { weight: "600", size: 11 },
          },
        };
      }
    });
    chosenCuts(data).forEach((b, k) => {
      for (const axis of ["lat", "macs", "bytes"]) {
        annotations[axis === "lat" ? `cut${k}` : `cut${k}_${axis}`] = {
          type: "line",
          xMin: b + 0.5,
          xMax: b + 0.5,
          yScaleID: axis,
          borderColor: R.CUT_COLOR,
          borderWidth: 2,
          borderDash: [6, 4],
          label: {
            display: axis === "lat",
            content: `cut ${k + 1}: ${R.fmtBytes(data.boundaryBytes[b])}`,
            position: "center",
            backgroundColor: R.CUT_COLOR,
            color: "#fff",
            font: { size: 11, weight: "600" },
            padding: 4,
          },
        };
      }
    });
    const latencySets = data.devices.map((d, i) => ({
      type: "line",
      label: `latency on ${d.name}`,
      yAxisID: "lat",
      data: data.nodes.map((node) => ({ x: node.position + 1, y: R.ms(node.latency[i]) })),
      borderColor: deviceColor(data, d.name, i),
      backgroundColor: deviceColor(data, d.name, i),
      borderWidth: 1.5,
      pointRadius: 0,
      pointHoverRadius: 3,
      tension: 0,
    }));
    const measured = data.nodes.some((x) => x.measured !== undefined)
      ? [
          {
            type: "line",
            label: "measured (profile)",
            yAxisID: "lat",
            data: data.nodes.map((node) => ({ x: node.position + 1, y: R.ms(node.measured ?? Number.NaN) })),
            borderColor: "#1d2330",
            backgroundColor: "#1d2330",
            borderDash: [3, 3],
            borderWidth: 1.2,
            pointRadius: 0,
            spanGaps: false,
          },
        ]
      : [];
    const chart = new window.Chart(document.getElementById("chart-layers"), {
      data: {
        datasets: [
          ...latencySets,
          ...measured,
          {
            type: "bar",
            label: "MACs",
            yAxisID: "macs",
            data: data.nodes.map((node) => ({ x: node.position + 1, y: node.macs })),
            backgroundColor: data.nodes.map((node) => R.alpha(R.stageColor(node.stage), 0.55)),
            barPercentage: 1,
            categoryPercentage: 1,
          },
          {
            type: "line",
            label: "bytes crossing the boundary",
            yAxisID: "bytes",
            data: data.boundaryBytes.slice(1).map((b, k) => ({ x: k + 1.5, y: Math.max(b, 1) })),
            borderColor: "#7048e8",
            backgroundColor: R.alpha("#7048e8", 0.12),
            fill: "origin",
            stepped: "middle",
            borderWidth: 1.2,
            pointRadius: 0,
          },
          {
            type: "scatter",
            label: "chosen cuts",
            yAxisID: "bytes",
            data: chosenCuts(data).map((b) => ({ x: b + 0.5, y: Math.max(data.boundaryBytes[b], 1) })),
            backgroundColor: R.CUT_COLOR,
            borderColor: "#fff",
            borderWidth: 1.5,
            pointRadius: 6,
            pointStyle: "rectRot",
          },
        ],
      },
      options: {
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: 0.5,
            max: n + 0.5,
            grid: { color: GRID },
            title: { display: true, text: "position in the partition order" },
            ticks: { callback: (v) => (Number.isInteger(v) ? v : "") },
          },
          bytes: {
            type: "logarithmic",
            position: "left",
            stack: "layers",
            stackWeight: 1.5,
            offset: true,
            grid: { color: GRID },
            title: { display: true, text: "bytes crossing" },
            ticks: {
              // Decades only, in decimal units (the log axis ticks at powers of ten).
              callback: (v) => {
                const k = Math.log10(v);
                if (Math.abs(k - Math.round(k)) > 1e-9) return "";
                return (
                  ["1 B", "10 B", "100 B", "1 kB", "10 kB", "100 kB", "1 MB", "10 MB", "100 MB", "1 GB"][
                    Math.round(k)
                  ] ?? ""
                );
              },
              maxTicksLimit: 6,
            },
            afterFit: (s) => {
              s.width = 72;
            },
          },
          macs: {
            type: "linear",
            position: "left",
            stack: "layers",
            stackWeight: 1.2,
            offset: true,
            grid: { color: GRID },
            title: { display: true, text: "MACs" },
            ticks: { callback: (v) => R.fmtCount(v) },
            afterFit: (s) => {
              s.width = 72;
            },
          },
          lat: {
            type: "linear",
            position: "left",
            stack: "layers",
            stackWeight: 2,
            offset: true,
            grid: { color: GRID },
            title: { display: true, text: "latency (ms)" },
            afterFit: (s) => {
              s.width = 72;
            },
          },
        },
        plugins: {
          legend: { position: "top" },
          annotation: { annotations },
          tooltip: {
            callbacks: {
              title: (items) => {
                const x = items[0]?.parsed.x ?? 0;
                if (Number.isInteger(x)) {
                  const node = data.nodes[x - 1];
                  return node ? `${x}. ${node.name} (${node.op}, ${R.stageLabel(data, node.stage)})` : "";
                }
                const b = Math.round(x - 0.5);
                return `between positions ${b} and ${b + 1}: ${data.boundaryTensors[b]} tensor(s)`;
              },
              label: (item) => {
                const ds = item.dataset;
                if (ds.yAxisID === "lat") return `${ds.label}: ${R.fmtTime(item.parsed.y / 1e3)}`;
                if (ds.yAxisID === "macs") return `MACs: ${R.fmtCount(item.parsed.y)}`;
                return `${ds.label}: ${R.fmtBytes(item.parsed.y)}`;
              },
            },
          },
        },
      },
    });
    return chart;
  };

  /** The pipeline as a Gantt chart of consecutive requests, predicted and (when benched) measured. */
  R.renderTimeline = (data) => {
    const rows = [];
    const datasets = [];
    const add = (tl, prefix, measured) => {
      if (!tl) return;
      const lanes = tl.steps.map((s) => `${prefix}${s.lane}`);
      rows.push(...lanes);
      datasets.push({
        label: measured ? "measured" : "predicted",
        data: tl.bars.map((b) => ({
          y: lanes[b.step],
          x: [R.ms(b.start), R.ms(b.end)],
          request: b.request,
          step: tl.steps[b.step],
        })),
        backgroundColor: tl.bars.map((b) => {
          const s = tl.steps[b.step];
          const a =
            (b.request % 2 === 0 ? 1 : 0.72) * (s.kind === "transfer" ? 0.55 : 1) * (measured ? 0.75 : 1);
          return R.alpha(R.stageColor(s.stage), a);
        }),
        borderColor: tl.bars.map((b) => (tl.steps[b.step].kind === "transfer" ? R.CUT_COLOR : "#ffffff")),
        borderWidth: tl.bars.map((b) => (tl.steps[b.step].kind === "transfer" ? 1 : 1)),
        borderSkipped: false,
        borderRadius: 3,
        barPercentage: 0.8,
        categoryPercentage: 1,
        grouped: false,
      });
    };
    add(data.timeline.predicted, data.timeline.measured ? "predicted · " : "", false);
    add(data.timeline.measured, "measured · ", true);
    const el = document.getElementById("chart-timeline");
    el.parentElement.style.height = `${Math.max(180, 34 * rows.length + 70)}px`;
    return new window.Chart(el, {
      type: "bar",
      data: { labels: rows, datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: {
            type: "linear",
            min: 0,
            grid: { color: GRID },
            title: { display: true, text: "time (ms)" },
          },
          y: { type: "category", grid: { display: false } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => {
                const r = items[0]?.raw;
                return r ? `request ${r.request + 1} · ${r.step.kind}` : "";
              },
              label: (item) => {
                const r = item.raw;
                return `${R.fmtTime((r.x[1] - r.x[0]) / 1e3)} (${r.x[0].toFixed(2)} → ${r.x[1].toFixed(2)} ms)`;
              },
            },
          },
        },
      },
    });
  };

  /**
   * A chart plugin drawing `labels` ({x, y in data units, text, plan, r: marker radius in px}) beside their
   * markers where they overlap neither another label nor a marker: the first free spot of eight directions on
   * growing rings, with a leader line when it is away from its marker. Placed boxes are kept on the chart
   * (`chart.$labels`) for tests.
   */
  function placedLabels(labels) {
    return {
      id: "cleavePlacedLabels",
      afterDatasetsDraw(chart) {
        const { ctx, chartArea: area } = chart;
        const sx = chart.scales.x;
        const sy = chart.scales.y;
        const pts = labels.map((l) => ({ ...l, px: sx.getPixelForValue(l.x), py: sy.getPixelForValue(l.y) }));
        const boxes = [];
        const hits = (b) =>
          boxes.some((o) => b.x1 < o.x2 && b.x2 > o.x1 && b.y1 < o.y2 && b.y2 > o.y1) ||
          pts.some((p) => {
            const cx = Math.max(b.x1, Math.min(p.px, b.x2));
            const cy = Math.max(b.y1, Math.min(p.py, b.y2));
            return (cx - p.px) ** 2 + (cy - p.py) ** 2 < (p.r + 2) ** 2;
          });
        const inside = (b) =>
          b.x1 >= area.left && b.x2 <= area.right && b.y1 >= area.top && b.y2 <= area.bottom;
        const dirs = [
          [1, 0],
          [-1, 0],
          [0, -1],
          [0, 1],
          [1, -1],
          [-1, -1],
          [1, 1],
          [-1, 1],
        ];
        ctx.save();
        ctx.textBaseline = "middle";
        for (const p of pts) {
          ctx.font = `${p.plan ? 700 : 400} ${p.plan ? 12 : 11}px system-ui, sans-serif`;
          const w = ctx.measureText(p.text).width + 6;
          const h = p.plan ? 16 : 15;
          let chosen;
          for (let ring = 1; ring <= 8 && !chosen; ring++) {
            for (const [dx, dy] of dirs) {
              const d = p.r + 4 + (ring - 1) * 14;
              const cx = p.px + dx * (d + (dx === 0 ? 0 : w / 2));
              const cy = p.py + dy * (d + (dy === 0 ? 0 : h / 2));
              const b = { x1: cx - w / 2, x2: cx + w / 2, y1: cy - h / 2, y2: cy + h / 2 };
              if (inside(b) && !hits(b)) {
                chosen = { ...b, ring };
                break;
              }
            }
          }
          // No free spot (a crowded plot): right of the marker, overlapping, rather than not at all.
          chosen ??= {
            x1: p.px + p.r + 4,
            x2: p.px + p.r + 4 + w,
            y1: p.py - h / 2,
            y2: p.py + h / 2,
            ring: 1,
          };
          boxes.push({ ...chosen, text: p.text });
          if (chosen.ring > 1) {
            ctx.strokeStyle = "#98a2b3";
            ctx.lineWidth = 1;
            ctx.beginPath();
            ctx.moveTo(p.px, p.py);
            ctx.lineTo((chosen.x1 + chosen.x2) / 2, (chosen.y1 + chosen.y2) / 2);
            ctx.stroke();
          }
          ctx.fillStyle = "rgba(255,255,255,0.85)";
          ctx.fillRect(chosen.x1, chosen.y1, w, h);
          ctx.fillStyle = p.plan ? "#1d2330" : "#475467";
          ctx.fillText(p.text, chosen.x1 + 3, (chosen.y1 + chosen.y2) / 2);
        }
        ctx.restore();
        chart.$labels = boxes;
      },
    };
  }

  /** Latency against throughput of the planner's options, the chosen plan and the baselines; energy as colour. */
  R.renderPareto = (data) => {
    const points = [
      ...data.pareto,
      data.plan,
      ...data.baselines.filter((b) => Number.isFinite(b.latency) && Number.isFinite(b.throughput)),
    ];
    const energies = points.map((p) => p.energy).filter(Number.isFinite);
    const eMin = Math.min(...energies);
    const eMax = Math.max(...energies);
    const colorOf = (e) => R.viridis(eMax > eMin ? (e - eMin) / (eMax - eMin) : 0.5);
    const xy = (p) => ({ x: R.ms(p.latency), y: p.throughput, energy: p.energy, label: p.label ?? p.name });
    const shapes = ["triangle", "rect", "rectRot", "crossRot", "circle", "rectRounded", "cross", "line"];
    const front = [...data.pareto].sort((a, b) => a.latency - b.latency);
    // A baseline that is the plan (same figures) is named in the plan's label, not drawn as a label of its own.
    const same = (b) =>
      Math.abs(b.latency - data.plan.latency) <= 1e-3 * data.plan.latency &&
      Math.abs(b.throughput - data.plan.throughput) <= 1e-3 * data.plan.throughput;
    const twins = data.baselines.filter(same).map((b) => b.name);
    const planLabel = twins.length > 0 ? `plan (= ${twins.join(", ")})` : "plan";
    const labels = [
      { x: R.ms(data.plan.latency), y: data.plan.throughput, text: planLabel, plan: true, r: 14 },
    ];
    const datasets = [
      {
        label: "plan (chosen)",
        data: [xy({ ...data.plan, label: planLabel })],
        pointStyle: "star",
        pointRadius: 14,
        pointHoverRadius: 16,
        borderWidth: 2.5,
        borderColor: "#1d2330",
        backgroundColor: colorOf(data.plan.energy),
        order: 0,
      },
    ];
    if (front.length > 0) {
      // The front is over three objectives; the line joins the options no other beats on both latency and
      // throughput (the 2-D front of this view), the dots are every option, coloured by energy.
      const front2d = [];
      for (const p of front) {
        if (front2d.length === 0 || p.throughput > front2d[front2d.length - 1].throughput) front2d.push(p);
      }
      datasets.push({
        label: "latency/throughput front",
        data: front2d.map(xy),
        showLine: true,
        borderColor: "#98a2b3",
        borderWidth: 1.5,
        pointRadius: 0,
        pointHoverRadius: 0,
        backgroundColor: "#98a2b3",
        order: 3,
      });
      datasets.push({
        label: "Pareto front (all objectives)",
        data: front.map(xy),
        pointRadius: front.length > 60 ? 3.5 : 5,
        pointHoverRadius: 7,
        pointBackgroundColor: front.map((p) => colorOf(p.energy)),
        pointBorderColor: "rgba(255,255,255,0.8)",
        pointBorderWidth: 0.5,
        backgroundColor: R.viridis(0.5),
        order: 2,
      });
    }
    data.baselines.forEach((b, i) => {
      if (!Number.isFinite(b.latency) || !Number.isFinite(b.throughput)) return;
      datasets.push({
        label: b.name,
        data: [xy(b)],
        pointStyle: shapes[i % shapes.length],
        pointRadius: 9,
        pointHoverRadius: 11,
        borderWidth: 2,
        borderColor: "#475467",
        backgroundColor: colorOf(b.energy),
        order: 1,
      });
      if (!same(b)) labels.push({ x: R.ms(b.latency), y: b.throughput, text: b.name, plan: false, r: 9 });
    });
    const xs = points.map((p) => p.latency).filter((v) => v > 0);
    const ys = points.map((p) => p.throughput).filter((v) => v > 0);
    const wide = (v) => v.length > 0 && Math.max(...v) / Math.min(...v) > 20;
    document.getElementById("pareto-colorbar").innerHTML =
      `<span>energy / request</span><span>${R.fmtEnergy(eMin)}</span>` +
      `<span class="bar" style="background:linear-gradient(90deg, ${R.VIRIDIS.join(",")})"></span>` +
      `<span>${R.fmtEnergy(eMax)}</span>`;
    return new window.Chart(document.getElementById("chart-pareto"), {
      type: "scatter",
      data: { datasets },
      plugins: [placedLabels(labels)],
      options: {
        scales: {
          x: {
            type: wide(xs) ? "logarithmic" : "linear",
            grid: { color: GRID },
            title: { display: true, text: "latency per request (ms) — lower is better" },
            grace: "8%",
          },
          y: {
            type: wide(ys) ? "logarithmic" : "linear",
            grid: { color: GRID },
            title: { display: true, text: "throughput (requests/s) — higher is better" },
            grace: "12%",
          },
        },
        plugins: {
          legend: { position: "top", labels: { usePointStyle: true } },
          tooltip: {
            callbacks: {
              label: (item) => {
                const r = item.raw;
                return `${r.label ?? item.dataset.label}: ${R.fmtTime(r.x / 1e3)}, ${R.fmtRate(r.y)}, ${R.fmtEnergy(r.energy)}`;
              },
            },
          },
        },
      },
    });
  };

  /** Memory each device needs for its stages, stacked by stage, against its capacity. */
  R.renderMemory = (data) => {
    const used = data.devices.map((d) =>
      data.stages.filter((s) => s.device === d.name).reduce((a, s) => a + s.memory, 0),
    );
    const labels = data.devices.map(
      (d, i) => `${d.name} · ${((100 * used[i]) / d.memory).toFixed(0)}% of ${R.fmtBytes(d.memory)}`,
    );
    const datasets = data.stages.map((s, i) => ({
      label: R.stageLabel(data, i),
      data: data.devices.map((d) => (d.name === s.device ? s.memory : 0)),
      backgroundColor: R.stageColor(i),
      stack: "mem",
      borderRadius: 3,
    }));
    datasets.push({
      label: "free",
      data: data.devices.map((d, i) => Math.max(0, d.memory - used[i])),
      backgroundColor: "#eef0f4",
      stack: "mem",
      borderRadius: 3,
    });
    const el = document.getElementById("chart-memory");
    el.parentElement.style.height = `${Math.max(160, 46 * data.devices.length + 80)}px`;
    return new window.Chart(el, {
      type: "bar",
      data: { labels, datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: {
            stacked: true,
            grid: { color: GRID },
            ticks: { callback: (v) => R.fmtBytes(v) },
            title: { display: true, text: "memory (capacity = full bar)" },
          },
          y: { stacked: true, grid: { display: false } },
        },
        plugins: {
          legend: { position: "top", labels: { filter: (item) => item.text !== "free" } },
          tooltip: {
            filter: (item) => item.raw > 0,
            callbacks: { label: (item) => `${item.dataset.label}: ${R.fmtBytes(item.raw)}` },
          },
        },
      },
    });
  };

  R.renderCharts = (data) => {
    setDefaults();
    return {
      layers: R.renderLayers(data),
      timeline: R.renderTimeline(data),
      pareto: R.renderPareto(data),
      memory: R.renderMemory(data),
    };
  };
})(window.CleaveReport);
