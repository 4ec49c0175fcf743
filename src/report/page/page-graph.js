// cleave report, client side: the network graph (cytoscape.js, laid out by dagre at generation time), its
// legend, hover tooltip and details panel.
window.CleaveReport = window.CleaveReport || {};
((R) => {
  /** Cytoscape elements from the layout computed at generation time (positions and edge routes). */
  function elements(graph) {
    const els = [];
    for (const n of graph.nodes) {
      els.push({
        group: "nodes",
        data: {
          id: n.id,
          label: n.label,
          kind: n.kind,
          pos: n.pos,
          io: n.io,
          w: n.w,
          h: n.h,
          color: n.kind === "op" ? R.stageColor(n.stage) : R.IO_COLOR,
        },
        position: { x: n.x, y: n.y },
      });
    }
    for (const e of graph.edges) {
      els.push({
        group: "edges",
        data: {
          id: e.id,
          source: e.source,
          target: e.target,
          tensor: e.tensor,
          cut: e.cut,
          label: e.cut ? R.fmtBytes(e.sentBytes ?? e.bytes) + (e.encoding ? ` ${e.encoding}` : "") : "",
          routed: e.cpw.length > 0,
          cpw: e.cpw,
          cpd: e.cpd,
        },
      });
    }
    return els;
  }

  const STYLE = () => [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: "data(w)",
        height: "data(h)",
        "background-color": "data(color)",
        label: "data(label)",
        color: "#fff",
        "font-size": 11,
        "font-weight": 600,
        "text-valign": "center",
        "text-halign": "center",
        "text-max-width": 80,
        "text-wrap": "ellipsis",
        "border-width": 0,
        "min-zoomed-font-size": 6,
      },
    },
    {
      selector: "node[kind != 'op']",
      style: {
        "background-color": "#ffffff",
        color: "#475467",
        "border-width": 1.5,
        "border-style": "dashed",
        "border-color": R.IO_COLOR,
        "font-weight": 500,
      },
    },
    {
      selector: "edge",
      style: {
        width: 1.3,
        "line-color": "#b8c0cc",
        "target-arrow-color": "#b8c0cc",
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.7,
      },
    },
    {
      // Along dagre's route (control points computed at generation time).
      selector: "edge[?routed]",
      style: {
        "curve-style": "unbundled-bezier",
        "control-point-weights": (e) => e.data("cpw"),
        "control-point-distances": (e) => e.data("cpd"),
        "edge-distances": "intersection",
      },
    },
    {
      selector: "edge[?cut]",
      style: {
        width: 3,
        "line-color": R.CUT_COLOR,
        "line-style": "dashed",
        "target-arrow-color": R.CUT_COLOR,
        label: "data(label)",
        "font-size": 10,
        "font-weight": 700,
        color: R.CUT_COLOR,
        "text-background-color": "#ffffff",
        "text-background-opacity": 1,
        "text-background-padding": 2,
        "text-background-shape": "round-rectangle",
        "text-border-color": R.CUT_COLOR,
        "text-border-width": 1,
        "text-border-opacity": 1,
        "z-index": 10,
        "min-zoomed-font-size": 4,
      },
    },
    {
      selector: "node.hover",
      style: { "border-width": 3, "border-color": "#1d2330", "border-style": "solid" },
    },
    { selector: ".dim", style: { opacity: 0.22 } },
  ];

  /** HTML of a compute node's details (shared by the tooltip and the side panel). */
  function nodeDetails(data, n) {
    const stage = data.stages[n.stage];
    const d = R.deviceIndex(data, stage.device);
    const rows = [
      ["Stage", R.esc(R.stageLabel(data, n.stage))],
      ["Position", `${n.position + 1} of ${data.nodes.length}`],
      [
        "Output",
        n.outputs
          .map((o) => `${R.esc(R.fmtShape(o.shape))} ${R.esc(o.dtype)} (${R.fmtBytes(o.bytes)})`)
          .join("<br>"),
      ],
      ["MACs", R.fmtCount(n.macs)],
      ["Params", R.fmtCount(n.params)],
      ["Predicted", `<b data-field="latency">${R.fmtTime(n.latency[d])}</b> on ${R.esc(stage.device)}`],
    ];
    if (n.measured !== undefined) rows.push(["Measured", `${R.fmtTime(n.measured)} (profile)`]);
    const others = data.devices
      .map((dev, i) => (i === d ? "" : `${R.esc(dev.name)}: ${R.fmtTime(n.latency[i])}`))
      .filter((s) => s !== "");
    if (others.length > 0) rows.push(["Elsewhere", others.join("<br>")]);
    return rows;
  }

  function ioDetails(kind, t) {
    return [
      ["Kind", kind === "input" ? "graph input" : "graph output"],
      ["Shape", `${R.esc(R.fmtShape(t.shape))} ${R.esc(t.dtype)}`],
      ["Size", R.fmtBytes(t.bytes)],
    ];
  }

  function showPanel(panel, title, badge, color, rows) {
    panel.innerHTML =
      `<h3>${R.esc(title)}</h3>` +
      `<span class="op" style="background:${color}">${R.esc(badge)}</span>` +
      `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>`;
  }

  /**
   * The condensed view: one box per stage (device, layers, MACs, predicted time), the graph inputs above and
   * outputs below, and one edge per pair of stages that exchange tensors, labelled with the tensors and their
   * size. Edges that skip a stage bow out to the side so they do not cross its box.
   */
  function stageElements(data) {
    const els = [];
    const k = data.stages.length;
    const y = (i) => 40 + (i + 1) * 130;
    els.push({
      group: "nodes",
      data: { id: "s-in", label: "input", kind: "io", w: 120, h: 34 },
      position: { x: 0, y: y(-1) },
    });
    data.stages.forEach((s, i) => {
      els.push({
        group: "nodes",
        data: {
          id: `s${i}`,
          stage: i,
          kind: "stage",
          color: R.stageColor(i),
          w: 260,
          h: 66,
          label: `${R.stageLabel(data, i)}\n${s.end - s.start} layers · ${R.fmtCount(s.macs)}MACs · ${R.fmtTime(s.latency)}`,
        },
        position: { x: 0, y: y(i) },
      });
    });
    els.push({
      group: "nodes",
      data: { id: "s-out", label: "output", kind: "io", w: 120, h: 34 },
      position: { x: 0, y: y(k) },
    });
    // Tensors between stages (each once per receiving stage), graph inputs and outputs.
    const groups = new Map();
    const add = (from, to, name, bytes) => {
      const key = `${from}>${to}`;
      const g = groups.get(key) ?? { from, to, tensors: new Map() };
      g.tensors.set(name, bytes);
      groups.set(key, g);
    };
    for (const e of data.edges)
      if (e.cut) add(data.nodes[e.from].stage, data.nodes[e.to].stage, e.tensor, e.sentBytes ?? e.bytes);
    for (const t of data.inputs) for (const p of t.nodes ?? []) add(-1, data.nodes[p].stage, t.name, t.bytes);
    for (const t of data.outputs) add(data.nodes[t.nodes[0]].stage, k, t.name, t.bytes);
    let side = 1;
    for (const g of groups.values()) {
      const names = [...g.tensors.keys()];
      const bytes = [...g.tensors.values()].reduce((a, b) => a + b, 0);
      const span = g.to - g.from;
      side = -side;
      els.push({
        group: "edges",
        data: {
          id: `se${g.from}_${g.to}`,
          source: g.from < 0 ? "s-in" : `s${g.from}`,
          target: g.to >= k ? "s-out" : `s${g.to}`,
          cut: g.from >= 0 && g.to < k,
          fromStage: g.from,
          toStage: g.to,
          label: `${names.length === 1 ? names[0] : `${names.length} tensors`} · ${R.fmtBytes(bytes)}`,
          bow: span > 1 ? side * 170 * (span - 1) : 0,
        },
      });
    }
    return els;
  }

  const STAGE_STYLE = () => [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: "data(w)",
        height: "data(h)",
        label: "data(label)",
        "text-wrap": "wrap",
        "text-valign": "center",
        "text-halign": "center",
        "font-size": 12,
        "background-color": "#ffffff",
        color: "#475467",
        "border-width": 1.5,
        "border-style": "dashed",
        "border-color": R.IO_COLOR,
      },
    },
    {
      selector: "node[kind = 'stage']",
      style: { "background-color": "data(color)", color: "#fff", "font-weight": 600, "border-width": 0 },
    },
    {
      selector: "edge",
      style: {
        width: 1.5,
        "curve-style": "unbundled-bezier",
        "control-point-distances": (e) => e.data("bow"),
        "control-point-weights": 0.5,
        "line-color": "#98a2b3",
        "target-arrow-color": "#98a2b3",
        "target-arrow-shape": "triangle",
        label: "data(label)",
        "font-size": 11,
        color: "#475467",
        "text-background-color": "#ffffff",
        "text-background-opacity": 1,
        "text-background-padding": 2,
      },
    },
    {
      selector: "edge[?cut]",
      style: {
        width: 3,
        "line-style": "dashed",
        "line-color": R.CUT_COLOR,
        "target-arrow-color": R.CUT_COLOR,
        color: R.CUT_COLOR,
        "font-weight": 700,
      },
    },
  ];

  /**
   * Renders the graph into #cy and wires hover/tap details. Calls `done(cy)` once the layout has run.
   */
  R.renderGraph = (data, graph, done) => {
    const container = document.getElementById("cy");
    const panel = document.getElementById("node-panel");
    const tip = document.getElementById("tooltip");
    R.timings.cyStart = performance.now();
    const cy = window.cytoscape({
      container,
      elements: elements(graph),
      layout: { name: "preset" },
      style: STYLE(),
      minZoom: 0.05,
      maxZoom: 3,
      boxSelectionEnabled: false,
      autoungrabify: true,
    });
    R.cy = cy;

    const describe = (node) => {
      const kind = node.data("kind");
      if (kind === "op") {
        const n = data.nodes[node.data("pos")];
        return { title: n.name, badge: n.op, color: R.stageColor(n.stage), rows: nodeDetails(data, n) };
      }
      const t = (kind === "input" ? data.inputs : data.outputs)[node.data("io")];
      return { title: t.name, badge: kind, color: R.IO_COLOR, rows: ioDetails(kind, t) };
    };

    cy.on("mouseover", "node", (ev) => {
      const node = ev.target;
      node.addClass("hover");
      const d = describe(node);
      showPanel(panel, d.title, d.badge, d.color, d.rows);
      panel.dataset.node = d.title;
      const box = container.getBoundingClientRect();
      const p = node.renderedPosition();
      tip.innerHTML =
        `<b>${R.esc(d.title)}</b> <span class="dim">${R.esc(d.badge)}</span><br>` +
        d.rows
          .slice(0, 6)
          .map(([k, v]) => `<span class="dim">${k}</span> ${v}`)
          .join("<br>");
      tip.style.display = "block";
      const x = box.left + p.x + 18;
      const y = box.top + p.y + 14;
      tip.style.left = `${Math.min(x, window.innerWidth - tip.offsetWidth - 8)}px`;
      tip.style.top = `${Math.min(y, window.innerHeight - tip.offsetHeight - 8)}px`;
    });
    cy.on("mouseout", "node", (ev) => {
      ev.target.removeClass("hover");
      tip.style.display = "none";
    });
    cy.on("viewport", () => {
      tip.style.display = "none";
    });

    // The layers opened on a cut: the nodes on both sides of the tensors crossing into stage `to` (default:
    // the first cut), with a few neighbours, at a legible zoom.
    const cutView = (to) => {
      const target = to ?? 1;
      const cut = data.edges.filter((e) => e.cut && data.nodes[e.to].stage === target);
      if (cut.length === 0) return readableView();
      const near = new Set();
      for (const e of cut) {
        for (let p = Math.max(0, e.from - 3); p <= Math.min(data.nodes.length - 1, e.from + 3); p++)
          near.add(p);
        for (let p = Math.max(0, e.to - 3); p <= Math.min(data.nodes.length - 1, e.to + 3); p++) near.add(p);
      }
      const eles = cy.nodes().filter((n) => n.data("kind") === "op" && near.has(n.data("pos")));
      cy.fit(eles, 40);
      if (cy.zoom() < 0.6) {
        cy.zoom(0.6);
        cy.center(
          cy.nodes().filter((n) => n.data("kind") === "op" && cut.some((e) => e.from === n.data("pos"))),
        );
      }
      if (cy.zoom() > 1.2) {
        cy.zoom(1.2);
        cy.center(eles);
      }
    };
    const view = document.getElementById("graph-view");
    const stagesContainer = document.getElementById("cy-stages");
    const stages = window.cytoscape({
      container: stagesContainer,
      elements: stageElements(data),
      layout: { name: "preset" },
      style: STAGE_STYLE(),
      minZoom: 0.1,
      maxZoom: 2,
      boxSelectionEnabled: false,
      autoungrabify: true,
    });
    R.cyStages = stages;
    /** Switches the view: "stages" (condensed) or "layers", the latter opened on `focus` (a function). */
    R.showGraph = (which, focus) => {
      view.dataset.view = which;
      if (which === "layers") {
        cy.resize();
        (focus ?? (() => cutView()))();
      } else {
        stages.resize();
        stages.fit(undefined, 30);
        if (stages.zoom() > 1.1) {
          stages.zoom(1.1);
          stages.center();
        }
      }
    };
    const fitStage = (i) =>
      cy.fit(
        cy.nodes().filter((n) => n.data("kind") === "op" && data.nodes[n.data("pos")].stage === i),
        30,
      );
    stages.on("tap", "node[kind = 'stage']", (ev) =>
      R.showGraph("layers", () => fitStage(ev.target.data("stage"))),
    );
    stages.on("tap", "edge[?cut]", (ev) => R.showGraph("layers", () => cutView(ev.target.data("toStage"))));
    document.getElementById("graph-stages").addEventListener("click", () => R.showGraph("stages"));
    document.getElementById("graph-layers").addEventListener("click", () => R.showGraph("layers"));

    const readableView = () => {
      cy.fit(undefined, 24);
      if (cy.zoom() >= 0.6) return;
      // A long chain fitted whole is unreadable: show its top at a legible zoom instead.
      const bb = cy.elements().boundingBox();
      const z = Math.max(0.6, Math.min(1, (container.clientWidth - 48) / bb.w));
      cy.zoom(z);
      cy.pan({ x: (container.clientWidth - bb.w * z) / 2 - bb.x1 * z, y: 24 - bb.y1 * z });
    };

    document.getElementById("graph-fit").addEventListener("click", () => cy.fit(undefined, 24));
    document.getElementById("graph-top").addEventListener("click", readableView);
    document.getElementById("graph-in").addEventListener("click", () =>
      cy.zoom({
        level: cy.zoom() * 1.4,
        renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 },
      }),
    );
    document.getElementById("graph-out").addEventListener("click", () =>
      cy.zoom({
        level: cy.zoom() / 1.4,
        renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 },
      }),
    );

    const legend = document.getElementById("graph-legend");
    const items = data.stages.map(
      (s, i) =>
        `<span class="item" data-stage="${i}" title="zoom to this stage"><span class="swatch" style="background:${R.stageColor(i)}"></span>` +
        `${R.esc(R.stageLabel(data, i))} <span class="dim">(${s.end - s.start} nodes)</span></span>`,
    );
    legend.innerHTML = `${items.join("")}<span class="cutkey">tensor sent over a link (size per request)</span>`;
    legend.querySelectorAll(".item").forEach((el) => {
      el.addEventListener("click", () => {
        const i = Number(el.dataset.stage);
        if (view.dataset.view !== "layers") return R.showGraph("layers", () => fitStage(i));
        cy.animate(
          {
            fit: {
              eles: cy
                .nodes()
                .filter((n) => n.data("kind") === "op" && data.nodes[n.data("pos")].stage === i),
              padding: 30,
            },
          },
          { duration: 300 },
        );
      });
    });

    cy.ready(() => {
      R.timings.layout = performance.now();
      // The layers stay laid out at the cut behind the condensed view, which a plan of one stage skips.
      cutView();
      R.showGraph(data.stages.length > 1 ? "stages" : "layers");
      done(cy);
    });
  };
})(window.CleaveReport);
