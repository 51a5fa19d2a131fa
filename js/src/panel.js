// nbtrack's live run panel: an anywidget ES module.
// The kernel sends deltas ({type: "delta"}) a few times a second and a full snapshot
// when a view says hello. Everything user-provided is set with textContent, never HTML.
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css";
import panelCss from "./panel.css";
import resetCss from "./reset.css";
import { align, allPositive, num, themeColours, ticks, titled, yRange, yTickLabels, yTitle } from "./format.js";
import { markLive } from "./live.js";

const FILTER_AFTER = 6; // metrics before the filter box appears
const DRAW_PER_FRAME = 4; // charts drawn in one animation frame (a new uPlot chart costs 5-10 ms) ...
const FRAME_MS = 25; // ... and fewer when they take longer: a frame's work stays well under 50 ms
const COMPACT = 6; // charts a section shows until "show all N" (two rows at the panel's width)
const LEGEND_CHARS = 10; // a legend names the key by its last part, cut to this

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

const MEDIA_VIEW_ROWS = 20; // table rows shown in a media card
const MEDIA_KEEP = 100; // items per media key for the slider (MAX_MEDIA in panel.py)

// one bar chart of a histogram reference, as SVG (bins: edges, values: counts)
function histogramSvg(ref) {
  const ns = "http://www.w3.org/2000/svg";
  const W = 300, H = 120, pad = 2;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 16}`);
  svg.setAttribute("width", String(W));
  svg.setAttribute("class", "nbt-hist");
  const counts = ref.values || [], edges = ref.bins || [];
  const top = Math.max(1, ...counts);
  const bw = (W - 2 * pad) / Math.max(1, counts.length);
  counts.forEach((c, i) => {
    const r = document.createElementNS(ns, "rect");
    const hgt = (H - pad) * (c / top);
    r.setAttribute("x", String(pad + i * bw));
    r.setAttribute("y", String(H - hgt));
    r.setAttribute("width", String(Math.max(1, bw - 1)));
    r.setAttribute("height", String(hgt));
    const t = document.createElementNS(ns, "title");
    t.textContent = `[${fmt(edges[i])}, ${fmt(edges[i + 1])}): ${c}`;
    r.append(t);
    svg.append(r);
  });
  for (const [x, v, anchor] of [[pad, edges[0], "start"], [W - pad, edges[edges.length - 1], "end"]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", String(x));
    t.setAttribute("y", String(H + 13));
    t.setAttribute("text-anchor", anchor);
    t.textContent = fmt(v);
    svg.append(t);
  }
  svg.dataset.bins = String(counts.length);
  return svg;
}

// the text of a data: URL (a saved notebook embeds small files this way)
function dataText(src) {
  const comma = src.indexOf(",");
  const head = src.slice(0, comma);
  const body = src.slice(comma + 1);
  if (!head.endsWith(";base64")) return decodeURIComponent(body);
  const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

const TEXT_MIMES = ["application/json", "text/html"];
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// a mask's class ids (grey PNG pixels) painted over its image, one colour per class
function paintMask(canvas, url, labels) {
  const im = new Image();
  im.onload = () => {
    canvas.width = im.naturalWidth;
    canvas.height = im.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(im, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let painted = 0;
    const seen = new Set();
    for (let i = 0; i < px.data.length; i += 4) {
      const id = px.data[i];
      if (id === 0) {
        px.data[i + 3] = 0; // class 0 is the background: left clear
        continue;
      }
      const hex = PALETTE[id % PALETTE.length];
      px.data[i] = parseInt(hex.slice(1, 3), 16);
      px.data[i + 1] = parseInt(hex.slice(3, 5), 16);
      px.data[i + 2] = parseInt(hex.slice(5, 7), 16);
      px.data[i + 3] = 115;
      painted++;
      seen.add(id);
    }
    ctx.putImageData(px, 0, 0);
    canvas.dataset.painted = String(painted);
    canvas.title = [...seen].sort((a, b) => a - b).map((id) => `${id}: ${(labels || {})[id] || id}`).join(", ");
  };
  im.src = url;
}

// boxes (wandb's box_data) over an image W x H pixels, as SVG
function boxesSvg(layer, W, H) {
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "nbt-boxes" });
  const labels = layer.class_labels || {};
  for (const box of layer.box_data || []) {
    const p = box.position || {};
    const sx = box.domain === "pixel" ? 1 : W, sy = box.domain === "pixel" ? 1 : H;
    let x0, x1, y0, y1;
    if (p.middle) {
      x0 = (p.middle[0] - p.width / 2) * sx; x1 = (p.middle[0] + p.width / 2) * sx;
      y0 = (p.middle[1] - p.height / 2) * sy; y1 = (p.middle[1] + p.height / 2) * sy;
    } else {
      x0 = p.minX * sx; x1 = p.maxX * sx; y0 = p.minY * sy; y1 = p.maxY * sy;
    }
    const colour = PALETTE[(box.class_id || 0) % PALETTE.length];
    const rect = svgEl("rect", { x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0), stroke: colour, fill: "none", "stroke-width": Math.max(1, W / 150), "vector-effect": "non-scaling-stroke" });
    const title = svgEl("title");
    title.textContent = box.box_caption || labels[box.class_id] || String(box.class_id ?? "");
    rect.append(title);
    svg.append(rect);
  }
  svg.dataset.boxes = String((layer.box_data || []).length);
  return svg;
}

// a chart (nbtrack.plot) from its table and spec
function chartView(spec, body, into) {
  const col = (name) => body.columns.indexOf(name);
  const rows = body.data || [];
  const kind = spec.kind;
  into.dataset.chart = kind;
  if (spec.title) into.append(h("div", "nbt-chart-title", spec.title));
  if (kind === "confusion_matrix") {
    const [ia, ip, iv] = [col(spec.y), col(spec.x), col(spec.value)];
    const classes = spec.classes || [];
    const counts = {};
    let most = 1;
    for (const r of rows) {
      counts[`${r[ia]}\u0000${r[ip]}`] = r[iv];
      most = Math.max(most, r[iv]);
    }
    const t = h("table", "nbt-table nbt-confusion");
    const head = h("tr");
    head.append(h("th", null, "actual \\ predicted"), ...classes.map((c) => h("th", null, c)));
    t.append(head);
    for (const a of classes) {
      const tr = h("tr");
      tr.append(h("th", null, a));
      for (const p of classes) {
        const n = counts[`${a}\u0000${p}`] || 0;
        const td = h("td", null, n);
        td.style.background = `rgba(31, 119, 180, ${(0.85 * n) / most})`;
        tr.append(td);
      }
      t.append(tr);
    }
    into.append(t);
    into.dataset.points = String(rows.length);
    return;
  }
  if (kind === "bar" || kind === "histogram") {
    let labels, values;
    if (kind === "bar") {
      labels = rows.map((r) => r[col(spec.x)]);
      values = rows.map((r) => +r[col(spec.y)]);
    } else {
      const xs = rows.map((r) => +r[col(spec.x)]).filter(Number.isFinite);
      const lo = Math.min(...xs), hi = Math.max(...xs);
      const n = 20, w = (hi - lo) / n || 1;
      values = new Array(n).fill(0);
      for (const x of xs) values[Math.min(n - 1, Math.floor((x - lo) / w))]++;
      into.append(histogramSvg({ values, bins: values.map((_, i) => lo + i * w).concat([hi]) }));
      into.dataset.points = String(xs.length);
      return;
    }
    const W = 300, H = 140, top = Math.max(1e-12, ...values.map(Math.abs));
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H + 14}`, width: W, class: "nbt-hist nbt-bars" });
    const bw = W / Math.max(1, values.length);
    values.forEach((v, i) => {
      const hgt = (H - 2) * (Math.abs(v) / top);
      const r = svgEl("rect", { x: i * bw, y: H - hgt, width: Math.max(1, bw - 2), height: hgt });
      const t = svgEl("title");
      t.textContent = `${labels[i]}: ${fmt(v)}`;
      r.append(t);
      const label = svgEl("text", { x: i * bw + bw / 2, y: H + 12, "text-anchor": "middle" });
      label.textContent = String(labels[i]).slice(0, 8);
      svg.append(r, label);
    });
    into.append(svg);
    into.dataset.points = String(values.length);
    return;
  }
  // line, scatter, line_series, roc_curve, pr_curve: one series per value of spec.series
  // one x column for all series (uPlot's shape): every point its own x entry, sorted
  // stably, so a curve's vertical steps (ROC, PR: several points at one x) stay in order
  const [ix, iy, is] = [col(spec.x), col(spec.y), spec.series ? col(spec.series) : -1];
  const points = rows
    .map((r) => [+r[ix], +r[iy], is >= 0 ? String(r[is]) : spec.y])
    .filter((p) => Number.isFinite(p[0]))
    .sort((a, b) => a[0] - b[0]);
  const groups = new Map();
  for (const p of points) if (!groups.has(p[2])) groups.set(p[2], groups.size);
  const data = [points.map((p) => p[0])];
  const series = [{ label: spec.xname || spec.x }];
  let i = 0;
  for (const [name, index] of groups) {
    data.push(points.map((p) => (groups.get(p[2]) === index ? p[1] : null)));
    const colour = PALETTE[i++ % PALETTE.length];
    series.push(kind === "scatter"
      ? { label: name, stroke: colour, paths: () => null, points: { show: true, size: 5, fill: colour } }
      : { label: name, stroke: colour, width: 1.5, spanGaps: true, points: { show: false } });
  }
  const holder = h("div");
  into.append(holder);
  new uPlot({ width: 300, height: 170, scales: { x: { time: false } }, series, legend: { live: false } }, data, holder);
  into.dataset.points = String(rows.length);
  into.dataset.series = String(groups.size);
}

function legendLabel(key) {
  const last = key.slice(key.lastIndexOf("/") + 1) || key;
  return last.length > LEGEND_CHARS ? `${last.slice(0, LEGEND_CHARS - 1)}…` : last;
}

function section(key) {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "metrics";
}

function render({ model, el }) {
  const root = h("div", "nbt-panel");
  const style = h("style");
  style.textContent = resetCss + uplotCss + panelCss;
  el.append(style, root);
  markLive(model.get("view_key"));

  // ---- header
  const header = h("div", "nbt-header");
  const title = h("span", "nbt-name");
  const badge = h("span", "nbt-badge");
  const meta = h("span", "nbt-meta");
  const tagList = h("span", "nbt-tags");
  const notes = h("div", "nbt-notes");
  const alertsBox = h("div", "nbt-alerts");
  const where = h("div", "nbt-where");
  header.append(title, badge, tagList, meta);
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
  const xLabel = h("label", "nbt-x");
  const xSelect = h("select", "nbt-xaxis");
  for (const [value, text] of [["step", "step"], ["relative", "relative time"], ["wall", "wall time"]]) {
    const o = h("option", null, text);
    o.value = value;
    xSelect.append(o);
  }
  xLabel.append("x ", xSelect);
  const combineLabel = h("label", "nbt-combine");
  const combineBox = h("input");
  combineBox.type = "checkbox";
  combineLabel.title = "keys that share the name after their prefix (train/loss, val/loss) on one chart";
  combineLabel.append(combineBox, " one chart per name");
  controls.append(filter, logLabel, smoothLabel, xLabel, combineLabel);
  const sections = h("div", "nbt-sections");
  const nothing = h("div", "nbt-empty");
  nothing.hidden = true;
  const textsBox = h("details", "nbt-texts");
  const summaryBox = h("details", "nbt-summary-box");
  const configBox = h("details", "nbt-config-box");
  const waiting = h("div", "nbt-empty", "No metrics logged yet: charts appear with the first run.log().");
  root.append(header, alertsBox, notes, where, controls, waiting, nothing, sections, textsBox, summaryBox, configBox);

  // ---- state
  const data = {}; // key -> {xs, ys, tailX, tailY}
  const charts = {}; // key -> {wrap, plot, log}
  const groups = {}; // section -> {details, grid}
  let summary = {}, texts = {};
  const media = {}; // key -> {items: [[step, refs]], card, slider, label, body, follow}
  const files = {}; // path -> {url} once fetched, or {waiting: [callbacks]}
  let dirty = new Set();
  let frame = 0;
  let tablesDirty = false; // summary, values or config changed since the tables were drawn

  const clock = { xs: [], ys: [], tailX: [], tailY: [] }; // step -> when it was logged
  const points = (k) => {
    const d = data[k];
    return [d.xs.concat(d.tailX), d.ys.concat(d.tailY)];
  };

  // pinned sections come first, in the order they were pinned; kept per project in the
  // browser (localStorage), so every run of the project opens with them on top
  const pinKey = `nbtrack.pins.${model.get("project") || ""}`;
  let pins = [];
  try {
    pins = JSON.parse(localStorage.getItem(pinKey) || "[]");
  } catch (e) {
    pins = []; // no storage here (a sandboxed frame): pins last as long as the view
  }

  function orderSections() {
    const rank = (n) =>
      pins.includes(n) ? pins.indexOf(n) - pins.length : n === "combined" ? -0.5 : n === "system" ? 1 : 0;
    const names = Object.keys(groups); // in the order their first key was logged
    names.sort((a, b) => rank(a) - rank(b));
    for (const n of names) {
      sections.append(groups[n].details);
      groups[n].pin.setAttribute("aria-pressed", String(pins.includes(n)));
    }
    root.dataset.sections = names.join(",");
  }

  function togglePin(name) {
    pins = pins.includes(name) ? pins.filter((n) => n !== name) : [...pins, name];
    try {
      localStorage.setItem(pinKey, JSON.stringify(pins));
    } catch (e) {
      // not kept: see above
    }
    orderSections();
  }

  function group(name) {
    if (!groups[name]) {
      const details = h("details", "nbt-section");
      details.open = name !== "system";
      details.dataset.section = name;
      const summary = h("summary");
      const label = h("span", null, name);
      const pin = h("button", "nbt-pin");
      pin.type = "button";
      pin.title = "pin this section to the top (for every run of this project)";
      pin.addEventListener("click", (e) => {
        e.preventDefault(); // a click in the summary would open or close the section
        togglePin(name);
      });
      summary.append(label, pin);
      const grid = h("div", "nbt-grid");
      const more = h("button", "nbt-show-all");
      more.type = "button";
      more.hidden = true;
      details.append(summary, grid, more);
      details.addEventListener("toggle", () => {
        if (details.open) schedule([...grid.children].map((c) => c.dataset.key).filter((k) => k in charts));
      });
      const g = (groups[name] = { details, grid, label, more, pin, expanded: false });
      more.addEventListener("click", () => {
        g.expanded = !g.expanded;
        applyFilter();
      });
      orderSections();
    }
    return groups[name];
  }

  // a chart's card in its section; its plot is made when it is first shown
  function placeChart(key) {
    const wrap = h("div", "nbt-chart");
    wrap.dataset.key = key;
    const heading = h("div", "nbt-chart-title", key);
    heading.title = key; // cut to one line: the whole key on hover
    wrap.append(heading);
    const g = group(section(key));
    g.grid.append(wrap);
    charts[key] = { wrap, plot: null, log: null, axis: null };
    countSection(g, section(key));
  }

  function makeChart(key, wrap) {
    const { line: stroke, fg, grid: gridColour } = themeColours(root);
    const useLog = logBox.checked && allPositive(data[key].ys);
    const mode = xMode(key);
    const title = mode === "wall" ? "time" : mode === "relative" ? "seconds" : xTitle(key);
    const plot = new uPlot(
      {
        width: 300,
        height: 150,
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: mode === "wall" }, y: useLog ? { distr: 3 } : { range: yRange } },
        axes: [
          titled({
            stroke: fg,
            grid: { stroke: gridColour },
            ticks: { stroke: gridColour },
            size: 24,
            ...(mode === "wall" ? {} : { values: (u, splits) => ticks(splits) }),
          }, title, wrap, "x"),
          titled({
            stroke: fg,
            grid: { stroke: gridColour },
            ticks: { stroke: gridColour },
            size: 50,
            values: yTickLabels(wrap),
          }, yTitle(key, useLog), wrap, "y"),
        ],
        series: [
          {
            label: title,
            value: mode === "wall" ? (u, v) => (v === null ? "—" : new Date(v * 1000).toLocaleTimeString()) : (u, v) => num(v, 8),
          },
          { label: "raw", stroke, width: 1, alpha: 0.35, show: +smooth.value > 0, value: (u, v) => num(v, 5) },
          { label: legendLabel(key), stroke, width: 1.5, value: (u, v) => num(v, 5) },
        ],
        hooks: {
          setScale: [
            (u, k) => {
              if (k === "y") wrap.dataset.yrange = `${u.scales.y.min},${u.scales.y.max}`;
              if (k === "x") wrap.dataset.xrange = `${u.scales.x.min},${u.scales.x.max}`;
            },
          ],
        },
      },
      chartData(key),
      wrap,
    );
    const labels = wrap.querySelectorAll(".u-legend .u-label");
    if (labels[2]) labels[2].title = key; // the legend's short name: the whole key on hover
    charts[key] = { wrap, plot, log: useLog, axis: (model.get("axes") || {})[key] || null, mode };
    wrap.dataset.axis = charts[key].axis || "";
    wrap.dataset.log = String(useLog);
  }

  // "name (N)", or "name (shown of N)" while the filter hides some
  function countSection(g, name) {
    const all = g.grid.children.length;
    const shown = [...g.grid.children].filter((c) => !c.hidden).length;
    g.label.textContent = shown === all ? `${name} (${all})` : `${name} (${shown} of ${all})`;
  }

  // what a chart of ``key`` shows: x, the raw series (while smoothing) and the smoothed one
  function chartData(key) {
    const [steps, ys] = points(key);
    const w = +smooth.value;
    return [xValues(key, steps), w > 0 ? ys : ys.map(() => null), ema(ys, w)];
  }

  // ---- one chart per name: train/loss and val/loss together on a "loss" chart, in a
  // "combined" section on top; the keys' own charts are hidden meanwhile
  const combos = {}; // name -> {wrap, plot, keys}
  function combinedNames() {
    const by = {};
    for (const k of Object.keys(data)) {
      const i = k.lastIndexOf("/");
      if (i > 0 && !system(k)) (by[k.slice(i + 1)] = by[k.slice(i + 1)] || []).push(k);
    }
    return Object.fromEntries(Object.entries(by).filter(([, keys]) => keys.length > 1));
  }

  function drawCombined(changed) {
    const wanted = combineBox.checked ? combinedNames() : {};
    for (const [name, c] of Object.entries(combos)) {
      if ((wanted[name] || []).join("\u0000") !== c.keys.join("\u0000")) {
        c.plot.destroy();
        c.wrap.remove();
        delete combos[name];
      }
    }
    for (const [name, keys] of Object.entries(wanted)) {
      const c = combos[name];
      if (c && !keys.some((k) => changed.has(k))) continue;
      const data = align(keys.map(points));
      if (c) {
        c.plot.setData(data);
        continue;
      }
      const wrap = h("div", "nbt-chart nbt-combined");
      wrap.dataset.name = name;
      wrap.dataset.keys = keys.join(",");
      const heading = h("div", "nbt-chart-title", name);
      heading.title = keys.join(", ");
      wrap.append(heading);
      group("combined").grid.append(wrap);
      const { fg, grid: gridColour } = themeColours(root);
      const plot = new uPlot({
        width: 300, height: 150, legend: { live: true },
        scales: { x: { time: false }, y: { range: yRange } },
        axes: [
          titled({ stroke: fg, grid: { stroke: gridColour }, size: 24, values: (u, splits) => ticks(splits) }, "step", wrap, "x"),
          titled({ stroke: fg, grid: { stroke: gridColour }, size: 50, values: yTickLabels(wrap) }, yTitle(name), wrap, "y"),
        ],
        series: [{ label: "step", value: (u, v) => num(v, 8) },
          ...keys.map((k, i) => ({ label: legendLabel(k.slice(0, k.lastIndexOf("/"))), stroke: PALETTE[i % PALETTE.length],
            width: 1.5, spanGaps: true, value: (u, v) => num(v, 5) }))],
      }, data, wrap);
      combos[name] = { wrap, plot, keys };
    }
    const merged = new Set(Object.values(wanted).flat());
    for (const [k, c] of Object.entries(charts)) c.wrap.classList.toggle("nbt-merged", merged.has(k));
    if (groups.combined) applyFilter();
    root.dataset.combined = Object.keys(combos).join(",");
  }

  // ---- x: step (or the key's define_metric step metric), relative time or wall time.
  // Times come from the clock (when each step was logged), interpolated between its points;
  // system metrics are sampled against seconds already.
  const system = (key) => key.startsWith("system/");
  const xTitle = (key) => (model.get("axes") || {})[key] || (system(key) ? "seconds" : "step");
  function xMode(key) {
    const chosen = xSelect.value;
    if (chosen === "step" || (model.get("axes") || {})[key]) return "step";
    if (!system(key) && !clock.xs.length && !clock.tailX.length) return "step"; // no clock yet
    return chosen;
  }

  function xValues(key, steps) {
    const mode = xMode(key);
    if (mode === "step") return steps;
    const start = model.get("started_at") || 0;
    if (system(key)) return mode === "wall" ? steps.map((x) => x + start) : steps;
    const cx = clock.xs.concat(clock.tailX), cy = clock.ys.concat(clock.tailY);
    const at = (step) => {
      let lo = 0, hi = cx.length - 1;
      if (step <= cx[0]) return cy[0];
      if (step >= cx[hi]) return cy[hi];
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (cx[mid] <= step) lo = mid;
        else hi = mid;
      }
      return cy[lo] + ((cy[hi] - cy[lo]) * (step - cx[lo])) / (cx[hi] - cx[lo] || 1);
    };
    return steps.map((st) => (mode === "wall" ? at(st) : at(st) - start));
  }

  function draw(key) {
    const c = charts[key];
    const w = +smooth.value;
    c.wrap.dataset.smoothing = String(w);
    const wantLog = logBox.checked && allPositive(data[key].ys);
    if (!c.plot || wantLog !== c.log || xMode(key) !== c.mode) {
      if (c.plot) c.plot.destroy(); // a new plot in the same place: the chart keeps its position
      makeChart(key, c.wrap); // made with its data (and its range)
      return;
    }
    c.plot.setSeries(1, { show: w > 0 });
    c.plot.setData(chartData(key));
  }

  // ---- media: the latest image / video / histogram / table per key, with a step slider
  function fetchFile(key, ref, done) {
    if (ref.src) return done(ref.src, TEXT_MIMES.some((m) => ref.src.startsWith(`data:${m}`)) ? dataText(ref.src) : null);
    const f = files[ref.path];
    if (f && f.waiting) return f.waiting.push(done);
    if (f) return done(f.url, f.text); // fetched, or known to be unavailable
    files[ref.path] = { waiting: [done] };
    try {
      model.send({ type: "file", key, path: ref.path });
    } catch (e) {
      files[ref.path] = { url: null };
      done(null);
    }
  }

  // a file's bytes arrived: answered on request, or pushed with a delta
  function onFile(msg, buffer) {
    const f = files[msg.path];
    if (f && !f.waiting) return;
    let url = null, text = null;
    if (!msg.error && buffer) {
      url = URL.createObjectURL(new Blob([buffer], { type: msg.mime }));
      if (TEXT_MIMES.includes(msg.mime)) text = new TextDecoder().decode(buffer);
    }
    files[msg.path] = { url, text };
    for (const cb of f ? f.waiting : []) cb(url, text);
  }

  function showRef(key, ref, into) {
    const kind = ref._type;
    const box = h("figure", "nbt-media-item");
    box.dataset.kind = kind;
    into.append(box);
    if (kind === "histogram") {
      box.append(histogramSvg(ref));
    } else if (!ref.path && !ref.src) {
      box.append(h("span", "nbt-muted", `${kind} (not stored: the run is kept in memory)`));
    } else if (kind === "image" || kind === "video") {
      const still = kind === "image" || ref.format === "gif"; // a GIF video plays in <img>
      const el = h(still ? "img" : "video");
      if (still) {
        el.alt = ref.caption || key;
        if (ref.width) el.width = Math.min(ref.width >= 64 ? ref.width : ref.width * 8, 300);
      } else {
        el.controls = el.loop = el.muted = true;
        el.width = 300;
      }
      if (kind === "image" && (ref.masks || ref.boxes)) {
        const stage = h("div", "nbt-stage");
        stage.append(el);
        box.append(stage);
        overlays(key, ref, stage, box);
      } else {
        box.append(el);
      }
      fetchFile(key, ref, (url) => {
        if (url) return (el.src = url);
        el.remove(); // no broken image: say what is missing
        box.append(h("span", "nbt-muted", `${kind} at step ${box.closest(".nbt-media")?.dataset.step ?? "?"} not available here (${ref.path})`));
      });
    } else if (kind === "audio") {
      const el = h("audio");
      el.controls = true;
      box.append(el);
      fetchFile(key, ref, (url) => (url ? (el.src = url) : box.append(h("span", "nbt-muted", ref.path))));
    } else if (kind === "html") {
      // scripts may run inside, in an opaque origin: no access to this page, its cookies or the kernel
      const frame = h("iframe", "nbt-html");
      frame.setAttribute("sandbox", "allow-scripts");
      frame.width = "300";
      frame.height = "200";
      box.append(frame);
      fetchFile(key, ref, (url, text) => {
        if (text !== null && text !== undefined) frame.srcdoc = text;
        else box.append(h("span", "nbt-muted", ref.path));
      });
    } else if (kind === "object3d" || kind === "molecule") {
      const info = `${kind === "object3d" ? "3-D object" : "molecule"} · ${ref.format} · ${fmt(ref.size)} bytes` +
        (ref.points ? ` · ${ref.points} points` : "");
      box.append(h("div", "nbt-muted", info));
      const link = h("a", null, "download");
      link.download = `${key.replace(/[^A-Za-z0-9_.-]/g, "_")}.${ref.format}`;
      box.append(link);
      fetchFile(key, ref, (url) => url && (link.href = url));
    } else if (kind === "chart") {
      fetchFile(key, ref, (url, text) => {
        if (!text) return box.append(h("span", "nbt-muted", ref.path));
        chartView(ref.spec || {}, JSON.parse(text), box);
      });
    } else if (kind === "table") {
      box.append(h("span", "nbt-muted", `${ref.rows} rows × ${(ref.columns || []).length} columns`));
      fetchFile(key, ref, (url, text) => {
        if (!text) return box.append(h("span", "nbt-muted", ` ${ref.path}`));
        const body = JSON.parse(text);
        const t = h("table", "nbt-table nbt-media-table");
        const head = h("tr");
        for (const c of body.columns) head.append(h("th", null, c));
        t.append(head);
        for (const row of body.data.slice(0, MEDIA_VIEW_ROWS)) {
          const tr = h("tr");
          for (const cell of row) tr.append(h("td", null, cell && cell._type ? `[${cell._type}]` : fmt(cell)));
          t.append(tr);
        }
        box.append(t);
      });
    }
    if (ref.caption) box.append(h("figcaption", null, ref.caption));
  }

  // an image's masks and boxes, each layer with a checkbox to show or hide it
  function overlays(key, ref, stage, box) {
    const toggles = h("div", "nbt-layers");
    const W = ref.width || 1, H = ref.height || 1;
    const layer = (name, el) => {
      const label = h("label");
      const check = h("input");
      check.type = "checkbox";
      check.checked = true;
      check.addEventListener("change", () => (el.style.display = check.checked ? "" : "none"));
      label.append(check, ` ${name}`);
      toggles.append(label);
      stage.append(el);
    };
    for (const [name, mask] of Object.entries(ref.masks || {})) {
      const canvas = h("canvas", "nbt-mask");
      canvas.dataset.layer = name;
      layer(`mask ${name}`, canvas);
      fetchFile(key, mask, (url) => url && paintMask(canvas, url, mask.class_labels));
    }
    for (const [name, boxes] of Object.entries(ref.boxes || {})) {
      const svg = boxesSvg(boxes, W, H);
      svg.dataset.layer = name;
      layer(`boxes ${name}`, svg);
    }
    box.dataset.masks = String(Object.keys(ref.masks || {}).length);
    box.dataset.boxes = String(Object.values(ref.boxes || {}).reduce((n, l) => n + (l.box_data || []).length, 0));
    box.append(toggles);
  }

  function mediaCard(key) {
    const card = h("div", "nbt-chart nbt-media");
    card.dataset.key = key;
    const label = h("div", "nbt-media-step");
    const slider = h("input", "nbt-media-slider");
    slider.type = "range";
    slider.min = "0";
    const body = h("div", "nbt-media-body");
    const heading = h("div", "nbt-chart-title", key);
    heading.title = key;
    card.append(heading, body, slider, label);
    const g = group(section(key));
    g.grid.append(card);
    countSection(g, section(key));
    const m = { items: [], card, slider, label, body, follow: true, shown: -1 };
    slider.addEventListener("input", () => {
      m.follow = +slider.value === m.items.length - 1;
      showMedia(key);
    });
    media[key] = m;
    return m;
  }

  function showMedia(key) {
    const m = media[key];
    const n = m.items.length;
    m.slider.max = String(Math.max(0, n - 1));
    m.slider.hidden = n < 2;
    if (m.follow) m.slider.value = String(n - 1);
    const i = Math.min(+m.slider.value, n - 1);
    if (i < 0 || i === m.shown) return;
    m.shown = i;
    const [step, refs] = m.items[i];
    m.card.dataset.step = String(step);
    m.card.dataset.count = String(n);
    m.label.textContent = `step ${step}` + (n > 1 ? ` · ${i + 1} of ${n}` : "");
    m.body.replaceChildren();
    for (const ref of refs) showRef(key, ref, m.body);
  }

  function addMedia(all, reset) {
    for (const [key, items] of Object.entries(all || {})) {
      const m = media[key] || mediaCard(key);
      m.items = reset ? items.slice() : m.items.concat(items);
      if (m.items.length > MEDIA_KEEP) m.items = m.items.slice(-MEDIA_KEEP);
      m.shown = -1;
      showMedia(key);
    }
    root.dataset.media = String(Object.keys(media).length);
  }

  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    for (const [k, c] of Object.entries(charts)) {
      const hide = q !== "" && !k.toLowerCase().includes(q);
      if (c.wrap.hidden && !hide) dirty.add(k); // drawn again once shown: a hidden chart has no size to scale by
      c.wrap.hidden = hide;
    }
    for (const [k, m] of Object.entries(media)) m.card.hidden = q !== "" && !k.toLowerCase().includes(q);
    let shown = 0;
    for (const [name, g] of Object.entries(groups)) {
      const visible = [...g.grid.children].filter((c) => !c.hidden && !c.classList.contains("nbt-merged"));
      g.details.hidden = visible.length === 0;
      shown += visible.length;
      countSection(g, name);
      fold(g, visible, q !== "");
    }
    if (dirty.size && !frame) frame = requestAnimationFrame(redraw);
    nothing.hidden = q === "" || shown > 0;
    nothing.textContent = `No metric or media key contains "${filter.value.trim()}".`;
  }

  // a compact section: its first COMPACT charts, "show all N" for the rest (a filter shows
  // every match); folded charts are not drawn until shown
  function fold(g, visible, filtering) {
    visible.forEach((c, i) => {
      const folded = !g.expanded && !filtering && i >= COMPACT;
      if (!folded && c.classList.contains("nbt-folded") && c.dataset.key in charts) dirty.add(c.dataset.key);
      c.classList.toggle("nbt-folded", folded);
    });
    g.more.hidden = filtering || visible.length <= COMPACT;
    g.more.textContent = g.expanded ? "show fewer" : `show all ${visible.length}`;
  }

  // one animation frame draws at most DRAW_PER_FRAME charts, fewer when they take longer
  // than FRAME_MS or cards were placed (the rest in the next frames), and only charts in
  // view: a folded, filtered-out or closed section's charts are drawn when shown, so a
  // 100-chart run never blocks the page for long
  function redraw() {
    frame = 0;
    const changed = new Set(dirty);
    let placed = 0;
    for (const k of dirty) if (!charts[k]) placeChart(k), placed++;
    const keys = Object.keys(data);
    controls.hidden = keys.length + Object.keys(media).length === 0;
    waiting.hidden = !controls.hidden;
    filter.hidden = keys.length + Object.keys(media).length <= FILTER_AFTER;
    applyFilter();
    const later = new Set();
    let drawn = 0;
    // placing cards costs the frame too (their layout): 25 of them as much as a chart
    const room = Math.max(0, DRAW_PER_FRAME - Math.ceil(placed / 25)); // the next frame goes on
    const start = performance.now();
    for (const k of dirty) {
      const c = charts[k];
      if (!c || c.wrap.hidden || c.wrap.matches(".nbt-folded, .nbt-merged") || !c.wrap.closest("details").open) continue;
      // uPlot finishes each chart after this loop (about as long again): stop at half the budget
      if (drawn >= room || (drawn > 0 && performance.now() - start > FRAME_MS / 2)) later.add(k);
      else draw(k), drawn++;
    }
    dirty = later;
    if (later.size && !frame) frame = requestAnimationFrame(redraw);
    drawCombined(changed);
    let most = 0;
    for (const k of keys) most = Math.max(most, data[k].xs.length + data[k].tailX.length);
    root.dataset.points = String(most);
    root.dataset.charts = String(keys.length);
    if (tablesDirty) renderTables();
  }

  function schedule(keys) {
    for (const k of keys) dirty.add(k);
    if (!frame) frame = requestAnimationFrame(redraw);
  }

  function renderTables() {
    tablesDirty = false;
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

  // a series delta: closed points to append (or all of them: reset) and the tail,
  // which replaces the previous tail (it is never part of xs)
  function applySeries(series) {
    for (const [k, d] of Object.entries(series || {})) {
      applyDelta(data[k] || (data[k] = { xs: [], ys: [], tailX: [], tailY: [] }), d);
      dirty.add(k);
    }
  }

  function applyDelta(cur, d) {
    if (d.reset) {
      cur.xs = d.reset[0].slice();
      cur.ys = d.reset[1].slice();
    } else if (d.append) {
      cur.xs.push(...d.append[0]);
      cur.ys.push(...d.append[1]);
    }
    cur.tailX = d.tail ? d.tail[0] : [];
    cur.tailY = d.tail ? d.tail[1] : [];
  }

  function setClock(points) {
    const [xs, ys] = points && points.length ? points : [[], []];
    Object.assign(clock, { xs: xs.slice(), ys: ys.slice(), tailX: [], tailY: [] });
  }

  function onDelta(msg, buffers) {
    if (msg.clock) applyDelta(clock, msg.clock);
    applySeries(msg.series);
    Object.assign(summary, msg.summary || {});
    Object.assign(texts, msg.texts || {});
    tablesDirty = tablesDirty || !!(msg.summary || msg.texts);
    for (const f of msg.files || []) onFile(f, buffers && buffers[f.buffer]);
    addMedia(msg.media, false);
    schedule([]);
  }

  function onMessage(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "snapshot") {
      summary = Object.assign({}, msg.summary);
      texts = Object.assign({}, msg.texts);
      tablesDirty = true;
      if (msg.clock) applyDelta(clock, msg.clock);
      applySeries(msg.series);
      addMedia(msg.media, true);
      schedule([]);
    } else if (msg.type === "delta") {
      onDelta(msg, buffers);
    } else if (msg.type === "file") {
      onFile(msg, buffers && buffers[0]);
    }
  }

  // alerts (run.alert): the newest few as a banner
  function onAlerts() {
    const all = model.get("alerts") || [];
    alertsBox.replaceChildren(
      ...all.slice(-3).reverse().map((a) => {
        const line = h("div", "nbt-alert", `${a.level}: ${a.title}: ${a.text} (step ${a.step})`);
        line.dataset.level = a.level;
        return line;
      }),
    );
    alertsBox.hidden = all.length === 0;
    root.dataset.alerts = String(all.length);
  }

  // a key plotted against its define_metric step metric: redraw with that axis
  function onAxes() {
    const axes = model.get("axes") || {};
    for (const [k, c] of Object.entries(charts)) {
      if (c.plot && (axes[k] || null) !== c.axis) {
        c.plot.destroy();
        c.wrap.remove();
        delete charts[k];
        dirty.add(k);
      }
    }
    schedule([]);
  }

  // the kernel restarted, died or is out of reach while the run was running: this view
  // gets nothing more, so it stops its clock and says so rather than "running"
  let lost = null; // {why, at}
  function kernelLost(why) {
    if (lost || model.get("state") !== "running" || model.get("as_of")) return;
    lost = { why, at: Date.now() / 1000 };
    onHeader();
  }

  function watchKernel() {
    const kernel = model.widget_manager && model.widget_manager.kernel;
    if (!kernel || !kernel.statusChanged) return () => {};
    const onStatus = (_k, status) => {
      if (status === "restarting" || status === "autorestarting") kernelLost("the kernel restarted");
      else if (status === "dead") kernelLost("the kernel died");
    };
    const onConnection = (_k, status) => status === "disconnected" && kernelLost("the kernel is not connected");
    kernel.statusChanged.connect(onStatus);
    if (kernel.connectionStatusChanged) kernel.connectionStatusChanged.connect(onConnection);
    return () => {
      kernel.statusChanged.disconnect(onStatus);
      if (kernel.connectionStatusChanged) kernel.connectionStatusChanged.disconnect(onConnection);
    };
  }

  function onHeader() {
    const state = lost ? "unknown" : model.get("state");
    title.textContent = model.get("name");
    tagList.replaceChildren(...(model.get("tags") || []).map((t) => h("span", "nbt-tag", t)));
    notes.textContent = lost
      ? `${lost.why[0].toUpperCase()}${lost.why.slice(1)}: this panel stopped at step ${model.get("step")}. ` +
        `The run's state is in its store: nbtrack view ${model.get("project")}/${model.get("run_id")}`
      : model.get("notes") || "";
    notes.hidden = !notes.textContent;
    const asOf = model.get("as_of");
    badge.textContent = lost ? lost.why.replace("the ", "") : state === "running" && asOf ? `running (as of ${new Date(asOf * 1000).toLocaleString()})` : state;
    badge.dataset.state = state;
    root.dataset.state = state;
    root.dataset.step = String(model.get("step"));
    root.dataset.rows = String(model.get("rows"));
    // a saved page is the state as of when it was made, a view whose kernel is gone as
    // of then: their clocks do not run on
    const end = model.get("finished_at") || model.get("as_of") || (lost && lost.at) || Date.now() / 1000;
    const cell = model.get("last_cell");
    const rows = model.get("rows");
    meta.replaceChildren(
      h("span", null, `${model.get("project")} / `),
      h("code", null, model.get("run_id")),
      h("span", null, ` · step ${model.get("step")}${rows === null || rows === undefined ? "" : ` · ${rows} rows`} · ${elapsed(end - model.get("started_at"))}`),
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
  setClock(model.get("clock"));
  setAll(model.get("snapshot"));
  addMedia(model.get("media"), true);
  onHeader();
  onAlerts();
  renderTables();
  const timer = setInterval(() => model.get("state") === "running" && !model.get("as_of") && !lost && onHeader(), 1000);
  const unwatch = watchKernel();
  const onConfig = () => renderTables();
  const onFinal = () => {
    summary = Object.assign({}, model.get("summary"));
    texts = Object.assign({}, model.get("texts"));
    tablesDirty = true;
    setClock(model.get("clock"));
    setAll(model.get("snapshot"));
    addMedia(model.get("media"), true);
  };
  const headerTraits = ["name", "tags", "notes", "state", "step", "rows", "last_cell", "finished_at", "where", "url", "sync"];
  for (const t of headerTraits) model.on(`change:${t}`, onHeader);
  model.on("change:config", onConfig);
  model.on("change:snapshot", onFinal);
  model.on("change:alerts", onAlerts);
  model.on("change:axes", onAxes);
  model.on("msg:custom", onMessage);
  filter.addEventListener("input", applyFilter);
  logBox.addEventListener("change", () => schedule(Object.keys(data)));
  combineBox.addEventListener("change", () => schedule(Object.keys(data)));
  xSelect.addEventListener("change", () => {
    root.dataset.xaxis = xSelect.value;
    schedule(Object.keys(data));
  });
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
    unwatch();
    for (const t of headerTraits) model.off(`change:${t}`, onHeader);
    model.off("change:config", onConfig);
    model.off("change:snapshot", onFinal);
    model.off("change:alerts", onAlerts);
    model.off("change:axes", onAxes);
    model.off("msg:custom", onMessage);
    for (const c of Object.values(charts)) if (c.plot) c.plot.destroy();
    for (const c of Object.values(combos)) c.plot.destroy();
    for (const f of Object.values(files)) if (f.url && f.url.startsWith("blob:")) URL.revokeObjectURL(f.url);
  };
}

export default { render };
