// nbtrack's live run panel: an anywidget ES module.
// The kernel sends deltas ({type: "delta"}) a few times a second and a full snapshot
// when a view says hello. Everything user-provided is set with textContent, never HTML.
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css";
import panelCss from "./panel.css";

const FILTER_AFTER = 6; // metrics before the filter box appears

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmt(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  if (v === null || v === undefined) return "None";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function elapsed(seconds) {
  if (!(seconds >= 0)) return "";
  const s = Math.floor(seconds % 60), m = Math.floor(seconds / 60) % 60, hr = Math.floor(seconds / 3600);
  return hr ? `${hr}h ${m}m ${s}s` : m ? `${m}m ${s}s` : `${s}s`;
}

function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

function table(rows) {
  const t = h("table", "nbt-table");
  for (const [k, v] of rows) {
    const tr = h("tr");
    tr.append(h("th", null, k), h("td", null, fmt(v)));
    t.append(tr);
  }
  return t;
}

function ema(ys, w) {
  if (!w) return ys;
  const out = new Array(ys.length);
  let acc = null;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    acc = y === null ? acc : acc === null ? y : acc * w + y * (1 - w);
    out[i] = acc;
  }
  return out;
}

function section(key) {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "metrics";
}

function render({ model, el }) {
  const root = h("div", "nbt-panel");
  const style = h("style");
  style.textContent = uplotCss + panelCss;
  el.append(style, root);

  // ---- header
  const header = h("div", "nbt-header");
  const title = h("span", "nbt-name");
  const badge = h("span", "nbt-badge");
  const meta = h("span", "nbt-meta");
  const where = h("div", "nbt-where");
  header.append(title, badge, meta);
  // ---- controls
  const controls = h("div", "nbt-controls");
  const filter = h("input", "nbt-filter");
  filter.type = "search";
  filter.placeholder = "filter metrics";
  const logLabel = h("label", "nbt-log");
  const logBox = h("input");
  logBox.type = "checkbox";
  logLabel.append(logBox, " log y");
  const smoothLabel = h("label", "nbt-smooth");
  const smooth = h("input");
  smooth.type = "range";
  smooth.min = "0";
  smooth.max = "0.99";
  smooth.step = "0.01";
  smooth.value = "0";
  const smoothValue = h("span", null, "0");
  smoothLabel.append("smoothing ", smooth, smoothValue);
  controls.append(filter, logLabel, smoothLabel);
  const sections = h("div", "nbt-sections");
  const textsBox = h("details", "nbt-texts");
  const summaryBox = h("details", "nbt-summary-box");
  const configBox = h("details", "nbt-config-box");
  root.append(header, where, controls, sections, textsBox, summaryBox, configBox);

  // ---- state
  const data = {}; // key -> {xs, ys, tailX, tailY}
  const charts = {}; // key -> {wrap, plot, log}
  const groups = {}; // section -> {details, grid}
  let summary = {}, texts = {};
  let dirty = new Set();
  let frame = 0;

  const points = (k) => {
    const d = data[k];
    return [d.xs.concat(d.tailX), d.ys.concat(d.tailY)];
  };

  function group(name) {
    if (!groups[name]) {
      const details = h("details", "nbt-section");
      details.open = name !== "system";
      details.dataset.section = name;
      const label = h("summary", null, name);
      const grid = h("div", "nbt-grid");
      details.append(label, grid);
      groups[name] = { details, grid, label };
      const names = Object.keys(groups).sort((a, b) => (a === "system") - (b === "system") || a.localeCompare(b));
      for (const n of names) sections.append(groups[n].details);
    }
    return groups[name];
  }

  function makeChart(key) {
    const wrap = h("div", "nbt-chart");
    wrap.dataset.key = key;
    wrap.append(h("div", "nbt-chart-title", key));
    const g = group(section(key));
    g.grid.append(wrap);
    // canvas does not resolve CSS variables: read the theme's colours as values
    const css = getComputedStyle(root);
    const stroke = css.getPropertyValue("--nbt-line").trim() || "#1f77b4";
    const fg = css.getPropertyValue("--nbt-fg").trim() || "#1f2328";
    const gridColour = css.getPropertyValue("--nbt-grid").trim() || "#eaeef2";
    const useLog = logBox.checked && data[key].ys.every((y) => y === null || y > 0);
    const plot = new uPlot(
      {
        width: 300,
        height: 150,
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: false }, y: useLog ? { distr: 3 } : {} },
        axes: [
          { stroke: fg, grid: { stroke: gridColour }, ticks: { stroke: gridColour }, size: 30 },
          { stroke: fg, grid: { stroke: gridColour }, ticks: { stroke: gridColour }, size: 50 },
        ],
        series: [
          { label: key.startsWith("system/") ? "seconds" : "step" },
          { label: "raw", stroke, width: 1, alpha: 0.35, show: +smooth.value > 0 },
          { label: key, stroke, width: 1.5 },
        ],
      },
      [[], [], []],
      wrap,
    );
    charts[key] = { wrap, plot, log: useLog };
    wrap.dataset.log = String(useLog);
    g.label.textContent = `${section(key)} (${g.grid.children.length})`;
  }

  function draw(key) {
    if (!charts[key]) makeChart(key);
    const c = charts[key];
    const wantLog = logBox.checked && data[key].ys.every((y) => y === null || y > 0);
    if (wantLog !== c.log) {
      c.plot.destroy();
      c.wrap.remove();
      delete charts[key];
      return draw(key);
    }
    const [xs, ys] = points(key);
    const w = +smooth.value;
    c.wrap.dataset.smoothing = String(w);
    c.plot.setSeries(1, { show: w > 0 });
    c.plot.setData([xs, w > 0 ? ys : ys.map(() => null), ema(ys, w)]);
  }

  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    for (const [k, c] of Object.entries(charts)) c.wrap.hidden = q !== "" && !k.toLowerCase().includes(q);
    for (const g of Object.values(groups)) {
      g.details.hidden = ![...g.grid.children].some((c) => !c.hidden);
    }
  }

  function redraw() {
    frame = 0;
    for (const k of dirty) draw(k);
    dirty = new Set();
    const keys = Object.keys(data);
    controls.hidden = keys.length === 0;
    filter.hidden = keys.length <= FILTER_AFTER;
    applyFilter();
    let most = 0;
    for (const k of keys) most = Math.max(most, data[k].xs.length + data[k].tailX.length);
    root.dataset.points = String(most);
    root.dataset.charts = String(keys.length);
    renderTables();
  }

  function schedule(keys) {
    for (const k of keys) dirty.add(k);
    if (!frame) frame = requestAnimationFrame(redraw);
  }

  function renderTables() {
    textsBox.replaceChildren(h("summary", null, `values (${Object.keys(texts).length})`), table(Object.entries(texts)));
    textsBox.hidden = Object.keys(texts).length === 0;
    summaryBox.replaceChildren(h("summary", null, "summary"), table(Object.entries(summary)));
    configBox.replaceChildren(h("summary", null, "config"), table(flatten(model.get("config"))));
  }

  function setAll(series) {
    for (const [k, [xs, ys]] of Object.entries(series || {})) {
      data[k] = { xs: xs.slice(), ys: ys.slice(), tailX: [], tailY: [] };
    }
    schedule(Object.keys(series || {}));
  }

  function onDelta(msg) {
    for (const [k, d] of Object.entries(msg.series || {})) {
      const cur = data[k] || (data[k] = { xs: [], ys: [], tailX: [], tailY: [] });
      if (d.reset) {
        cur.xs = d.reset[0].slice();
        cur.ys = d.reset[1].slice();
        cur.tailX = [];
        cur.tailY = [];
      } else {
        if (d.append) {
          cur.xs.push(...d.append[0]);
          cur.ys.push(...d.append[1]);
        }
        cur.tailX = d.tail ? d.tail[0] : [];
        cur.tailY = d.tail ? d.tail[1] : [];
      }
      dirty.add(k);
    }
    Object.assign(summary, msg.summary || {});
    Object.assign(texts, msg.texts || {});
    schedule([]);
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "snapshot") {
      summary = Object.assign({}, msg.summary);
      texts = Object.assign({}, msg.texts);
      setAll(msg.series);
    } else if (msg.type === "delta") {
      onDelta(msg);
    }
  }

  function onHeader() {
    const state = model.get("state");
    title.textContent = model.get("name");
    badge.textContent = state;
    badge.dataset.state = state;
    root.dataset.state = state;
    root.dataset.step = String(model.get("step"));
    root.dataset.rows = String(model.get("rows"));
    const end = model.get("finished_at") || Date.now() / 1000;
    const cell = model.get("last_cell");
    meta.replaceChildren(
      h("span", null, `${model.get("project")} / `),
      h("code", null, model.get("run_id")),
      h("span", null, ` · step ${model.get("step")} · ${model.get("rows")} rows · ${elapsed(end - model.get("started_at"))}`),
      ...(cell !== null && cell !== undefined ? [h("span", "nbt-cell", ` · last logged by [${cell}]`)] : []),
    );
    const url = model.get("url");
    where.replaceChildren(h("span", null, "data: "), h("code", null, model.get("where")));
    if (url) {
      const a = h("a", null, url);
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener";
      where.append(" · ", a);
    }
    const sync = model.get("sync");
    if (sync && sync.server) {
      const s = h("span", "nbt-sync", ` · ${sync.state}: ${sync.sent} rows sent, ${sync.pending} pending`);
      s.dataset.state = sync.state;
      where.append(s);
      if (sync.error) where.append(h("span", "nbt-sync-error", ` · ${sync.error}`));
    }
  }

  // saved state (a reopened notebook, or a finished run) first, then live data
  summary = Object.assign({}, model.get("summary"));
  texts = Object.assign({}, model.get("texts"));
  setAll(model.get("snapshot"));
  onHeader();
  renderTables();
  const timer = setInterval(() => model.get("state") === "running" && onHeader(), 1000);
  const onConfig = () => renderTables();
  const onFinal = () => {
    summary = Object.assign({}, model.get("summary"));
    texts = Object.assign({}, model.get("texts"));
    setAll(model.get("snapshot"));
  };
  const headerTraits = ["name", "state", "step", "rows", "last_cell", "finished_at", "where", "url", "sync"];
  for (const t of headerTraits) model.on(`change:${t}`, onHeader);
  model.on("change:config", onConfig);
  model.on("change:snapshot", onFinal);
  model.on("msg:custom", onMessage);
  filter.addEventListener("input", applyFilter);
  logBox.addEventListener("change", () => schedule(Object.keys(data)));
  smooth.addEventListener("input", () => {
    smoothValue.textContent = smooth.value;
    schedule(Object.keys(data));
  });
  try {
    model.send({ type: "hello" });
  } catch (e) {
    // no kernel (a saved notebook): the saved state is all there is
  }
  return () => {
    clearInterval(timer);
    for (const t of headerTraits) model.off(`change:${t}`, onHeader);
    model.off("change:config", onConfig);
    model.off("change:snapshot", onFinal);
    model.off("msg:custom", onMessage);
    for (const c of Object.values(charts)) c.plot.destroy();
  };
}

export default { render };
