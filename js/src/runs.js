// nbtrack's runs table: sort by any column, filter by name/tag/state/group, and overlay
// a metric across the selected runs. User text is only ever set with textContent.
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css";
import panelCss from "./panel.css";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function render({ model, el }) {
  const root = h("div", "nbt-panel nbt-runs");
  const style = h("style");
  style.textContent = uplotCss + panelCss +
    ".nbt-runs th{cursor:pointer;user-select:none}.nbt-runs td,.nbt-runs th{padding:2px 8px;border-bottom:1px solid var(--nbt-grid);text-align:left}" +
    ".nbt-runs table{border-collapse:collapse}.nbt-runs .nbt-row-state{font-weight:600}";
  el.append(style, root);
  const bar = h("div", "nbt-controls");
  const filter = h("input", "nbt-filter");
  filter.type = "search";
  filter.placeholder = "filter: name, tag, state, group";
  const metric = h("select", "nbt-metric");
  bar.append(filter, h("span", null, "overlay "), metric);
  const table = h("table", "nbt-runs-table");
  const chartBox = h("div", "nbt-overlay");
  root.append(bar, table, chartBox);

  let sortKey = "start", sortDir = -1, plot = null;
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
    const cols = model.get("columns");
    const head = h("tr");
    head.append(h("th", null, ""));
    for (const c of cols) {
      const th = h("th", null, c + (c === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      th.dataset.col = c;
      th.addEventListener("click", () => {
        sortDir = c === sortKey ? -sortDir : 1;
        sortKey = c;
        drawTable();
      });
      head.append(th);
    }
    const body = [head];
    const rows = visibleRows();
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
    root.dataset.rows = String(rows.length);
    root.dataset.order = rows.map((r) => r.id).join(",");
  }

  function drawMetrics() {
    const keys = model.get("metrics");
    metric.replaceChildren(...keys.map((k) => {
      const o = h("option", null, k);
      o.value = k;
      return o;
    }));
  }

  function request() {
    if (!selected.size || !metric.value) {
      if (plot) plot.destroy();
      plot = null;
      chartBox.replaceChildren();
      root.dataset.overlay = "0";
      return;
    }
    model.send({ type: "history", key: metric.value, ids: [...selected] });
  }

  function onMessage(msg) {
    if (!msg || msg.type !== "history" || msg.key !== metric.value) return;
    const entries = Object.entries(msg.series);
    const xs = [...new Set(entries.flatMap(([, s]) => s[1]))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs];
    const series = [{ label: "step" }];
    entries.forEach(([, [name, sx, sy]], i) => {
      const ys = new Array(xs.length).fill(null);
      sx.forEach((x, j) => { ys[index.get(x)] = sy[j]; });
      data.push(ys);
      series.push({ label: name, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: true });
    });
    if (plot) plot.destroy();
    chartBox.replaceChildren(h("div", "nbt-chart-title", msg.key));
    const css = getComputedStyle(root);
    const fg = css.getPropertyValue("--nbt-fg").trim() || "#1f2328";
    const grid = css.getPropertyValue("--nbt-grid").trim() || "#eaeef2";
    plot = new uPlot({
      width: 620, height: 260, scales: { x: { time: false } }, series,
      axes: [{ stroke: fg, grid: { stroke: grid } }, { stroke: fg, grid: { stroke: grid } }],
    }, data, chartBox);
    root.dataset.overlay = String(entries.length);
  }

  drawMetrics();
  drawTable();
  filter.addEventListener("input", drawTable);
  metric.addEventListener("change", request);
  model.on("msg:custom", onMessage);
  model.on("change:rows", drawTable);
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:rows", drawTable);
    if (plot) plot.destroy();
  };
}

export default { render };
