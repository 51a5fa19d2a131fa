// nbtrack's runs table: sort by any column, filter by name/tag/state/group, and overlay
// a metric across the selected runs. User text is only ever set with textContent.
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css";
import panelCss from "./panel.css";
import resetCss from "./reset.css";
import { align, allPositive, num, themeColours, ticks, titled, yRange, yTickLabels, yTitle } from "./format.js";
import { markLive } from "./live.js";

const PAGE = 100; // rows drawn at first, and added by each "show more": a 10,000-run project stays quick
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const GRID_RUNS = 12; // ticked runs compared on every chart (the first ones ticked)

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function render({ model, el }) {
  const root = h("div", "nbt-panel nbt-runs");
  const style = h("style");
  style.textContent = resetCss + uplotCss + panelCss +
    ".nbt-table-scroll{overflow-x:auto;max-width:100%}.nbt-runs-table td,.nbt-runs-table th{white-space:nowrap}" +
    ".nbt-runs-table td:nth-child(-n+2),.nbt-runs-table th:nth-child(-n+2){position:sticky;background:var(--nbt-bg);z-index:1}" +
    ".nbt-runs-table td:first-child,.nbt-runs-table th:first-child{left:0;min-width:22px}" +
    ".nbt-runs-table td:nth-child(2),.nbt-runs-table th:nth-child(2){left:38px}" +
    ".nbt-runs th{cursor:pointer;user-select:none}.nbt-runs td,.nbt-runs th{padding:2px 8px;border-bottom:1px solid var(--nbt-grid);text-align:left}" +
    ".nbt-runs table{border-collapse:collapse}.nbt-runs .nbt-row-state{font-weight:600}";
  el.append(style, root);
  markLive(model.get("view_key"));
  const bar = h("div", "nbt-controls");
  const filter = h("input", "nbt-filter");
  filter.type = "search";
  filter.placeholder = "filter: name, tag, state, group";
  const metric = h("select", "nbt-metric");
  const logLabel = h("label", "nbt-log");
  const logBox = h("input");
  logBox.type = "checkbox";
  logLabel.append(logBox, " log y");
  bar.append(filter, h("span", null, "overlay "), metric, logLabel);
  const table = h("table", "nbt-runs-table");
  const chartBox = h("div", "nbt-overlay");
  const gridBox = h("div", "nbt-compare");
  const parallelBox = h("div", "nbt-parallel");
  const more = h("button", "nbt-more");
  more.type = "button";
  // a wide table scrolls sideways inside the panel, the tick box and name staying in view
  const tableBox = h("div", "nbt-table-scroll");
  tableBox.append(table);
  root.append(bar, tableBox, more, chartBox, gridBox, parallelBox);

  const initial = model.get("initial_sort") || {};
  let sortKey = initial.key || "start", sortDir = initial.key ? initial.dir || 1 : -1, plot = null;
  let shownRows = PAGE;
  let last = null; // the last history message, drawn again when log y changes
  more.addEventListener("click", () => {
    shownRows += PAGE;
    drawTable();
  });
  const selected = new Set();

  function value(row, col) {
    const s = row._sort || {};
    return col in s ? s[col] : row[col];
  }

  function visibleRows() {
    const q = filter.value.trim().toLowerCase();
    const rows = model.get("rows").filter((r) => !q ||
      [r.name, r.state, r.group, ...(r.tags || [])].some((v) => String(v || "").toLowerCase().includes(q)));
    return rows.sort((a, b) => {
      const x = value(a, sortKey), y = value(b, sortKey);
      if (x === y) return 0;
      if (x === null || x === undefined || x === "") return 1;
      if (y === null || y === undefined || y === "") return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
  }

  function drawTable() {
    const started = performance.now();
    const cols = model.get("columns");
    const head = h("tr");
    head.append(h("th", null, ""));
    for (const c of cols) {
      const th = h("th", null, c + (c === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      th.dataset.col = c;
      th.addEventListener("click", () => {
        shownRows = PAGE;
        sortDir = c === sortKey ? -sortDir : 1;
        sortKey = c;
        drawTable();
      });
      head.append(th);
    }
    const body = [head];
    const matching = visibleRows();
    const rows = matching.slice(0, shownRows);
    for (const r of rows) {
      const tr = h("tr");
      tr.dataset.id = r.id;
      const box = h("input");
      box.type = "checkbox";
      box.checked = selected.has(r.id);
      box.addEventListener("change", () => {
        box.checked ? selected.add(r.id) : selected.delete(r.id);
        request();
      });
      const first = h("td");
      first.append(box);
      tr.append(first);
      for (const c of cols) {
        const td = h("td", c === "state" ? "nbt-row-state" : null, r[c] === undefined ? "" : r[c]);
        td.dataset.col = c;
        tr.append(td);
      }
      body.push(tr);
    }
    table.replaceChildren(...body);
    const hidden = matching.length - rows.length;
    more.textContent = `show ${Math.min(PAGE, hidden)} more (${hidden} not shown)`;
    more.hidden = hidden <= 0;
    root.dataset.rows = String(rows.length);
    root.dataset.matching = String(matching.length);
    root.dataset.drawMs = String(Math.round(performance.now() - started));
    root.dataset.order = rows.map((r) => r.id).join(",");
    drawParallel(rows);
  }

  // parallel coordinates: one axis per config key that differs between runs, then the
  // chosen metric; one line per visible run, coloured from low (blue) to high (red)
  function drawParallel(rows) {
    const keys = model.get("params") || [];
    const target = metric.value;
    parallelBox.replaceChildren();
    root.dataset.parallel = "0";
    if (!keys.length || !target) return;
    const axes = [...keys.map((k) => ({ key: k, get: (r) => (r._params || {})[k] })),
      { key: target, get: (r) => (r._metrics || {})[target] }];
    const W = 620, H = 180, top = 18, bottom = 18;
    for (const a of axes) {
      const values = rows.map(a.get).filter((v) => v !== null && v !== undefined);
      a.numeric = values.every((v) => typeof v === "number");
      if (a.numeric) {
        a.lo = Math.min(...values);
        a.hi = Math.max(...values);
      } else {
        a.cats = [...new Set(values.map(String))].sort();
      }
    }
    const y = (a, v) => {
      if (v === null || v === undefined) return null;
      const f = a.numeric ? (a.hi === a.lo ? 0.5 : (v - a.lo) / (a.hi - a.lo))
        : (a.cats.length < 2 ? 0.5 : a.cats.indexOf(String(v)) / (a.cats.length - 1));
      return top + (1 - f) * (H - top - bottom);
    };
    const x = (i) => 40 + (i * (W - 80)) / Math.max(1, axes.length - 1);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", String(W));
    svg.setAttribute("class", "nbt-parallel-svg");
    const add = (tag, attrs, text) => {
      const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = String(text);
      svg.append(e);
      return e;
    };
    const last = axes[axes.length - 1];
    let lines = 0;
    for (const r of rows) {
      const points = axes.map((a, i) => [x(i), y(a, a.get(r))]).filter((p) => p[1] !== null);
      if (points.length < 2) continue;
      const m = last.get(r);
      const f = typeof m === "number" && last.hi !== last.lo ? (m - last.lo) / (last.hi - last.lo) : 0.5;
      const line = add("polyline", {
        points: points.map((p) => p.join(",")).join(" "), fill: "none", "stroke-width": 1.5,
        stroke: `rgb(${Math.round(40 + 200 * f)}, 90, ${Math.round(240 - 200 * f)})`,
      });
      line.dataset.id = r.id;
      const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
      t.textContent = r.name;
      line.append(t);
      lines++;
    }
    axes.forEach((a, i) => {
      add("line", { x1: x(i), x2: x(i), y1: top, y2: H - bottom, stroke: "currentColor", "stroke-opacity": 0.5 });
      add("text", { x: x(i), y: 12, "text-anchor": "middle", "font-size": 10, fill: "currentColor" }, a.key);
      const hi = a.numeric ? a.hi : a.cats[a.cats.length - 1];
      const lo = a.numeric ? a.lo : a.cats[0];
      add("text", { x: x(i) + 3, y: top + 8, "font-size": 9, fill: "currentColor" }, hi === undefined ? "" : hi);
      add("text", { x: x(i) + 3, y: H - bottom + 12, "font-size": 9, fill: "currentColor" }, lo === undefined ? "" : lo);
    });
    parallelBox.append(h("div", "nbt-chart-title", `config against ${target}`), svg);
    root.dataset.parallel = String(lines);
    root.dataset.axes = axes.map((a) => a.key).join(",");
  }

  function drawMetrics() {
    const keys = model.get("metrics");
    metric.replaceChildren(...keys.map((k) => {
      const o = h("option", null, k);
      o.value = k;
      return o;
    }));
    if (initial.key && keys.includes(initial.key)) metric.value = initial.key;
  }

  // one colour per run, the same on every chart: from the run's place among all rows
  const place = new Map((model.get("rows") || []).map((r, i) => [r.id, i]));
  const colourOf = (id) => COLOURS[(place.get(id) ?? 0) % COLOURS.length];
  let gridPlots = [];

  function request() {
    if (!selected.size || !metric.value) {
      if (plot) plot.destroy();
      plot = null;
      last = null;
      chartBox.replaceChildren();
      root.dataset.overlay = "0";
      drawGrid(null);
      return;
    }
    model.send({ type: "history", key: metric.value, ids: [...selected] });
    model.send({ type: "histories", keys: model.get("metrics"), ids: [...selected].slice(0, GRID_RUNS) });
  }

  // the ticked runs on every chart: one per metric any of them has a history of
  function drawGrid(msg) {
    for (const p of gridPlots) p.destroy();
    gridPlots = [];
    gridBox.replaceChildren();
    root.dataset.compare = "0";
    if (!msg) return;
    const ids = Object.keys(Object.values(msg.series)[0] || {});
    const title = `every metric, ${ids.length} run${ids.length === 1 ? "" : "s"}` +
      (selected.size > ids.length ? ` (the first ${ids.length} ticked)` : "");
    const grid = h("div", "nbt-grid");
    gridBox.append(h("div", "nbt-chart-title", title), grid);
    const { fg, grid: gridColour } = themeColours(root);
    let charts = 0;
    for (const [key, byRun] of Object.entries(msg.series)) {
      const entries = Object.entries(byRun).filter(([, s]) => s[1].length);
      if (!entries.length) continue;
      const card = h("div", "nbt-chart");
      card.dataset.key = key;
      card.dataset.series = String(entries.length);
      card.dataset.colours = entries.map(([id]) => `${id}:${colourOf(id)}`).join(",");
      const heading = h("div", "nbt-chart-title", key);
      heading.title = key;
      card.append(heading);
      grid.append(card);
      const [data, series] = aligned(entries);
      gridPlots.push(new uPlot({
        width: 300, height: 170, series, legend: { live: false },
        scales: { x: { time: false }, y: { range: yRange } },
        axes: [
          titled({ stroke: fg, grid: { stroke: gridColour }, size: 24, values: (u, splits) => ticks(splits) }, "step", card, "x"),
          titled({ stroke: fg, grid: { stroke: gridColour }, size: 50, values: yTickLabels(card) }, yTitle(key), card, "y"),
        ],
      }, data, card));
      charts++;
    }
    root.dataset.compare = String(charts);
  }

  // series of several runs on one x (uPlot's shape): every step any of them logged
  function aligned(entries) {
    const data = align(entries.map(([, [, sx, sy]]) => [sx, sy]));
    const series = [{ label: "step" }, ...entries.map(([id, [name]]) => (
      { label: name, stroke: colourOf(id), width: 1.5, spanGaps: true, value: (u, v) => num(v, 5) }))];
    return [data, series];
  }

  function onMessage(msg) {
    if (msg && msg.type === "histories") return drawGrid(msg);
    if (!msg || msg.type !== "history" || msg.key !== metric.value) return;
    last = msg;
    const entries = Object.entries(msg.series);
    if (plot) plot.destroy();
    plot = null;
    if (!entries.some(([, [, sx]]) => sx.length)) {
      // ticked runs with no history of this key: say so rather than draw an empty chart
      chartBox.replaceChildren(h("div", "nbt-empty", `No history of ${msg.key} in the selected runs: pick another metric.`));
      root.dataset.overlay = "0";
      return;
    }
    const [data, series] = aligned(entries);
    chartBox.replaceChildren(h("div", "nbt-chart-title", msg.key));
    const { fg, grid } = themeColours(root);
    const useLog = logBox.checked && data.slice(1).every(allPositive);
    plot = new uPlot({
      width: 620, height: 260, series,
      scales: { x: { time: false }, y: useLog ? { distr: 3 } : { range: yRange } },
      axes: [
        titled({ stroke: fg, grid: { stroke: grid }, values: (u, splits) => ticks(splits) }, "step", chartBox, "x"),
        titled({ stroke: fg, grid: { stroke: grid }, size: 50, values: yTickLabels(chartBox) }, yTitle(msg.key, useLog), chartBox, "y"),
      ],
    }, data, chartBox);
    chartBox.dataset.log = String(useLog);
    root.dataset.overlay = String(entries.length);
  }

  drawMetrics();
  drawTable();
  filter.addEventListener("input", () => {
    shownRows = PAGE;
    drawTable();
  });
  logBox.addEventListener("change", () => {
    if (last) onMessage(last);
  });
  metric.addEventListener("change", () => {
    request();
    drawParallel(visibleRows().slice(0, shownRows));
  });
  model.on("msg:custom", onMessage);
  model.on("change:rows", drawTable);
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:rows", drawTable);
    if (plot) plot.destroy();
    for (const p of gridPlots) p.destroy();
  };
}

export default { render };
