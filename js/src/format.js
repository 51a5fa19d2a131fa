// Numbers as text on charts: ticks, hover values and y ranges, shared by the panel and
// the runs table.
import uPlot from "uplot";

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

// one value as text for a tick or a hover: exact enough for any magnitude (1e-7 .. 1e12),
// SI above 10,000, scientific below 0.001; never "0" for a value that is not 0
export function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4) {
    for (const [f, s] of SI) if (a >= f) return `${+(v / f).toPrecision(digits)}${s}`;
  }
  if (a < 1e-3) return v.toExponential(Math.max(0, digits - 2)).replace(/\.?0+e/, "e");
  return String(+v.toPrecision(digits));
}

// tick labels: the fewest digits that tell neighbouring ticks apart; on a log axis only
// the powers of ten are labelled (when two or more are in view), as uPlot's own log axis does
export function ticks(splits, log = false) {
  const shown = (v) => v !== null && Number.isFinite(v);
  let keep = splits.map(shown);
  if (log) {
    const decade = (v) => shown(v) && v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
    if (splits.filter(decade).length >= 2) keep = splits.map(decade);
  }
  for (let digits = 2; digits <= 12; digits++) {
    const labels = splits.map((v, i) => (keep[i] ? num(v, digits) : null));
    const kept = labels.filter((l) => l !== null);
    if (new Set(kept).size === kept.length) return labels;
  }
  return splits.map((v, i) => (keep[i] ? String(v) : null));
}

// a y axis's labels, also kept on ``el`` (data-yticks) for tests and for reading
export function yTickLabels(el) {
  return (u, splits) => {
    const labels = ticks(splits, u.scales.y.distr === 3);
    el.dataset.yticks = labels.filter((l) => l !== null).join("|");
    return labels;
  };
}

// an axis with its title (uPlot's label), also kept on ``el`` (data-xtitle, data-ytitle)
export function titled(axis, title, el, which) {
  if (el) el.dataset[`${which}title`] = title;
  return { ...axis, label: title, labelSize: 14, labelFont: "11px system-ui, sans-serif" };
}

// the y title of a metric's chart: its name after the last "/" (the card's heading has it all)
export function yTitle(key, log = false) {
  const last = key.slice(key.lastIndexOf("/") + 1) || key;
  const short = last.length > 24 ? `${last.slice(0, 23)}…` : last;
  return log ? `${short} (log)` : short;
}

// whether a series can go on a log axis: every value above 0 (gaps allowed)
export function allPositive(ys) {
  return ys.every((y) => y === null || y > 0);
}

// a y range with room around the data; a flat series gets a tight band around its value
export function yRange(u, min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    const s = u.scales.y; // nothing in view (a hidden chart): keep the range it had
    return Number.isFinite(s.min) && Number.isFinite(s.max) ? [s.min, s.max] : [0, 1];
  }
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.05;
    return [min - pad, max + pad];
  }
  return uPlot.rangeNum(min, max, 0.1, true);
}

// several series on one x, as uPlot wants them: [xs, ys1, ys2, ...] where xs is every x
// any of them has (sorted) and a series is null where it has no point
export function align(pairs) {
  const xs = [...new Set(pairs.flatMap(([px]) => px))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  return [xs, ...pairs.map(([px, py]) => {
    const ys = new Array(xs.length).fill(null);
    px.forEach((x, j) => { ys[index.get(x)] = py[j]; });
    return ys;
  })];
}

// the theme's colours as values (a canvas does not resolve CSS variables)
export function themeColours(el) {
  const css = getComputedStyle(el);
  const get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return { line: get("--nbt-line", "#1f77b4"), fg: get("--nbt-fg", "#1f2328"), grid: get("--nbt-grid", "#eaeef2") };
}
