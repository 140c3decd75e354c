// The dashboard's pages (README "Dashboard"). Every name and value from the server is put on the page as
// text (textContent), never as markup; what goes into a chart's labels is escaped first (plotly reads a
// few tags in its labels). It only reads: GET requests to this page's own origin.
"use strict";

const EVERY_MS = 2000;
const KIND_COLORS = {
  snapshot: "#9aa5b1", rollback: "#c0392b", promotion: "#8e44ad", drift: "#e67e22", guard_trip: "#c0392b",
  guard_resume: "#27ae60", lease: "#2a6fdb", fallback: "#d35400",
};

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// Text for plotly's labels: its tags (<b>, <br>, <a>...) and entities become plain characters.
function chartText(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function num(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return digits === undefined ? Number(value).toLocaleString("en") : Number(value).toFixed(digits);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "—";
}

function fillRows(table, rows, empty) {
  const body = table.tBodies[0];
  if (!rows.length && empty) {
    const td = el("td", empty, "note");
    td.colSpan = table.tHead.rows[0].cells.length;
    const tr = el("tr");
    tr.appendChild(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    for (const cell of cells) {
      const td = cell instanceof Node ? cell : el("td", cell);
      if (typeof cell === "number" || (typeof cell === "string" && /^[-\d,.]+$/.test(cell))) td.className = "num";
      tr.appendChild(td instanceof HTMLTableCellElement ? td : wrap(td));
    }
    return tr;
  }));
}

function wrap(node) {
  const td = el("td");
  td.appendChild(node);
  return td;
}

async function getJSON(url) {
  const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!answer.ok) throw new Error(`${url}: ${answer.status}`);
  return answer.json();
}

function showProblem(text) {
  const node = document.getElementById("problem");
  node.hidden = !text;
  node.textContent = text ? `Redis: ${text} (showing the last figures read)` : "";
}

// What an interval of loss differences (challenger minus champion) says: smaller losses are better.
function verdict(diff) {
  if (diff.low === null || diff.high === null || diff.low === undefined) return "too few events";
  if (diff.high < 0) return "challenger better";
  if (diff.low > 0) return "challenger worse";
  return "no clear difference";
}

function firstMetric(metrics) {
  for (const [name, windows] of Object.entries(metrics || {})) {
    return `${name} ${num(windows.all, 4)}`;
  }
  return "—";
}

// -- the list of models --------------------------------------------------------------------------------

async function refreshIndex() {
  try {
    const answer = await getJSON("/api/models");
    showProblem(answer.problem);
    const table = document.getElementById("models");
    document.getElementById("empty").hidden = answer.models.length > 0;
    fillRows(table, answer.models.map((m) => {
      const link = el("a", m.name);
      link.href = `/models/${encodeURIComponent(m.name)}`;
      const learner = m.running === undefined ? "…" : m.running ? (m.learning ? "learning" : "not learning") : "stopped";
      return [link, m.head ?? "—", learner, m.events_learned ?? "—", firstMetric(m.metrics), m.challengers ?? 0];
    }));
  } catch (error) {
    showProblem(String(error.message || error));
  }
}

// -- one model -----------------------------------------------------------------------------------------

const model = { name: "", points: [], since: 0, timeline: [] };

function card(label, value) {
  const node = el("div", null, "card");
  node.append(el("div", label, "label"), el("div", value, "value"));
  return node;
}

function renderCards(overview) {
  const status = overview.status || overview.last_status;
  const state = document.getElementById("state");
  const running = overview.status !== null;
  state.textContent = running ? (status.learning ? "learning" : "not learning") : "no learner running";
  state.className = `badge ${running ? "running" : "stopped"}`;
  const last = model.points[model.points.length - 1];
  const cards = [
    card("version (head)", `${status ? status.model_version : "—"} (${overview.head ?? "—"})`),
    card("events learned", num(status && status.events_learned)),
    card("events/s", last ? num(Math.round(last.rate)) : "—"),
    card("lag", status ? num(Object.values(status.lag).reduce((a, b) => a + b, 0)) : "—"),
    card("dead letters", num(status && status.dead_lettered)),
  ];
  for (const [name, windows] of Object.entries((status && status.metrics) || {})) {
    for (const [window, value] of Object.entries(windows)) {
      cards.push(card(window === "all" ? name : `${name} (last ${window})`, num(value, 4)));
    }
  }
  if (status && status.labels) {
    cards.push(card("labels waiting", num(status.labels.waiting)));
    cards.push(card("label delay (median)", status.labels.delay_ms === undefined ? "—"
      : `${num(status.labels.delay_ms / 1000, 1)} s`));
  }
  if (overview.guard_tripped) cards.push(card("guard tripped", overview.guard_tripped));
  if (overview.lease) cards.push(card("lease", `${overview.lease.who} (epoch ${overview.lease.epoch})`));
  document.getElementById("cards").replaceChildren(...cards);
}

function timelineShapes(top) {
  return model.timeline.map((entry) => ({
    type: "line", xref: "x", yref: "paper", x0: new Date(entry.at * 1000), x1: new Date(entry.at * 1000), y0: 0,
    y1: top, line: { color: KIND_COLORS[entry.kind] || "#888", width: entry.kind === "snapshot" ? 1 : 2,
                     dash: entry.kind === "snapshot" ? "dot" : "solid" },
  }));
}

function timelineTrace() {
  const shown = model.timeline;
  return {
    name: "timeline", type: "scatter", mode: "markers", yaxis: "y2", x: shown.map((e) => new Date(e.at * 1000)),
    y: shown.map(() => 1), marker: { size: 9, symbol: "triangle-down", color: shown.map((e) => KIND_COLORS[e.kind] || "#888") },
    hovertext: shown.map((e) => chartText(`${e.kind} v${e.version ?? "—"}: ${e.why || e.who || ""}`)),
    hoverinfo: "text", showlegend: false,
  };
}

function metricTraces() {
  const traces = [];
  const names = new Map();
  for (const point of model.points) {
    for (const [name, windows] of Object.entries(point.metrics || {})) {
      for (const window of Object.keys(windows)) names.set(`${name}\u0000${window}`, [name, window]);
    }
  }
  const x = model.points.map((p) => new Date(p.at * 1000));
  for (const [name, window] of names.values()) {
    traces.push({
      name: chartText(window === "all" ? name : `${name} (last ${window})`), type: "scatter", mode: "lines", x,
      y: model.points.map((p) => (p.metrics && p.metrics[name] ? p.metrics[name][window] ?? null : null)),
      line: { dash: window === "all" ? "solid" : "dot" },
    });
  }
  return traces;
}

const LAYOUT = { margin: { l: 55, r: 20, t: 10, b: 40 }, uirevision: "keep", legend: { orientation: "h" },
                 xaxis: { type: "date" } };

function renderCharts() {
  if (typeof Plotly === "undefined") return;
  const x = model.points.map((p) => new Date(p.at * 1000));
  Plotly.react("metrics-chart", [...metricTraces(), timelineTrace()], {
    ...LAYOUT, shapes: timelineShapes(1), yaxis2: { overlaying: "y", range: [0, 1.05], visible: false, fixedrange: true },
  }, { displaylogo: false, responsive: true });
  Plotly.react("rate-chart", [
    { name: "events/s", type: "scatter", mode: "lines", x, y: model.points.map((p) => p.rate) },
    { name: "lag", type: "scatter", mode: "lines", x, y: model.points.map((p) => p.lag), yaxis: "y2" },
  ], { ...LAYOUT, margin: { ...LAYOUT.margin, r: 60 }, yaxis2: { overlaying: "y", side: "right", rangemode: "tozero" },
       yaxis: { rangemode: "tozero" } },
  { displaylogo: false, responsive: true });
  const labelled = model.points.filter((p) => p.labels);
  document.getElementById("labels-chart").hidden = !labelled.length;
  document.getElementById("labels-note").hidden = labelled.length > 0;
  if (!labelled.length) return;
  const kinds = new Set(labelled.flatMap((p) => Object.keys(p.labels)).filter((k) => k !== "delay_ms"));
  Plotly.react("labels-chart", [...kinds].map((kind) => ({
    name: chartText(kind), type: "scatter", mode: "lines", x: labelled.map((p) => new Date(p.at * 1000)),
    y: labelled.map((p) => p.labels[kind] ?? null),
  })), LAYOUT, { displaylogo: false, responsive: true });
}

function renderTables(overview) {
  const status = overview.status || overview.last_status;
  fillRows(document.getElementById("lag"), Object.entries((status && status.lag) || {}).map(([p, n]) => [p, num(n)]), "no partition assigned");
  fillRows(document.getElementById("dead"), Object.entries((status && status.dead_letters) || {}).map(([k, n]) => [k, num(n)]), "none");
  fillRows(document.getElementById("challengers"), overview.challengers.flatMap((c) => {
    const pairing = c.pairing || {};
    const names = Object.keys(pairing.metrics || {});
    const diff = pairing.difference;
    const interval = diff ? `${num(diff.value, 4)} (${diff.metric}) [${num(diff.low, 4)}, ${num(diff.high, 4)}]: ${verdict(diff)}`
      : "—";
    const rows = (names.length ? names : ["—"]).map((name, i) => [
      i ? "" : c.challenger, i ? "" : c.spec, i ? "" : `v${c.from_version}${c.fork ? " fork" : ""}`,
      i ? "" : (c.running ? "running" : "stopped"), i ? "" : num(c.events_learned), i ? "" : num(pairing.paired_events || 0),
      name, pairing.paired_events ? num(((pairing.metrics || {})[name] || {}).all, 4) : "—",
      pairing.paired_events ? num(((pairing.champion || {})[name] || {}).all, 4) : "—", i ? "" : interval,
    ]);
    return rows;
  }), "no challengers (README \"Experiments\")");
  const replicas = overview.replicas || [];
  fillRows(document.getElementById("replicas"), replicas.map((r) => [r.replica, r.model_version ?? "—",
    r.partitions.join(", "), num(r.predicted), when(r.at)]), "none heard from");
  document.getElementById("replicas-note").textContent = overview.replicas === null
    ? (overview.replicas_problem || "Start the dashboard with --bootstrap-servers to list the serve replicas.") : "";
  fillRows(document.getElementById("timeline"), [...model.timeline].reverse().map((e) => {
    const kind = el("td", e.kind);
    kind.dataset.kind = e.kind;
    return [when(e.at), kind, e.version ?? "—", num(e.events), e.who, e.why];
  }), "nothing yet");
  fillRows(document.getElementById("snapshots"), overview.snapshots.map((s) => (s.problem ? [s.version, "", "", "", s.problem, "", "", ""]
    : [s.version, s.parent ?? "—", when(s.created), num(s.events_learned), firstMetric(s.metrics), s.reason,
       s.pinned ? "pinned" : "", s.head ? "head" : ""])), "no snapshot yet");
}

async function refreshModel() {
  try {
    const [overview, history] = await Promise.all([
      getJSON(`/api/models/${encodeURIComponent(model.name)}`),
      getJSON(`/api/models/${encodeURIComponent(model.name)}/history?since=${model.since}`),
    ]);
    showProblem(history.problem);
    for (const point of history.points) {
      if (point.at > model.since) model.points.push(point);
    }
    if (model.points.length) model.since = model.points[model.points.length - 1].at;
    model.timeline = overview.timeline;
    renderCards(overview);
    renderTables(overview);
    renderCharts();
    document.body.dataset.points = String(model.points.length);
  } catch (error) {
    showProblem(String(error.message || error));
  }
}

function start() {
  const page = document.body.dataset.page;
  if (page === "index") {
    refreshIndex();
    setInterval(refreshIndex, EVERY_MS);
    return;
  }
  model.name = decodeURIComponent(location.pathname.split("/").pop());
  document.getElementById("name").textContent = model.name;
  document.title = `streamlearner — ${model.name}`;
  refreshModel();
  setInterval(refreshModel, EVERY_MS);
}

document.addEventListener("DOMContentLoaded", start);
