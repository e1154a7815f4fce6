// Charts drawn as inline SVG: a stacked bar per minute for throughput, a closing-price line
// with pattern markers. The viewBox scales with the container, so they fit any width.

import { h, s } from "./ui.js";

const OUTCOMES = [["succeeded", "Succeeded"], ["dead", "Dead"], ["cancelled", "Cancelled"]];

export function throughputChart(points) {
  const W = 600, H = 160, left = 34, bottom = 20, top = 8;
  const total = (p) => p.succeeded + p.dead + p.cancelled;
  const max = Math.max(1, ...points.map(total));
  const slot = (W - left) / Math.max(1, points.length);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const bars = [];
  points.forEach((p, i) => {
    let base = 0;
    const label = new Date(p.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    for (const [key, name] of OUTCOMES) {
      if (!p[key]) continue;
      bars.push(s("rect", {
        class: `bar ${key}`, x: left + i * slot + 2, width: Math.max(1, slot - 4),
        y: y(base + p[key]), height: y(base) - y(base + p[key]),
      }, s("title", {}, `${label}: ${p[key]} ${name.toLowerCase()}`)));
      base += p[key];
    }
  });
  const first = points[0], last = points[points.length - 1];
  const tick = (p) => new Date(p.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const sum = points.reduce((a, p) => a + total(p), 0);
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Jobs finished per minute over the last ${points.length} minutes: ${sum} in all, at most ${max} in a minute` },
      s("line", { class: "axis", x1: left, x2: W, y1: y(0), y2: y(0) }),
      niceTicks(0, max, 4).filter((v) => Number.isInteger(v)).map((v) => [
        v ? s("line", { class: "grid-line", x1: left, x2: W, y1: y(v), y2: y(v) }) : null,
        s("text", { class: "tick", x: left - 4, y: y(v) + 4, "text-anchor": "end" }, String(v)),
      ]),
      first ? s("text", { class: "tick", x: left, y: H - 4 }, tick(first)) : null,
      last ? s("text", { class: "tick", x: W, y: H - 4, "text-anchor": "end" }, `${tick(last)} (now)`) : null,
      bars),
    h("figcaption", {},
      OUTCOMES.map(([key, name]) => h("span", { class: `legend ${key}` }, name)),
      sum === 0 ? h("span", { class: "muted" }, " — no job finished in this window") : null));
}

// Round values for an axis: about `count` of them, 1, 2 or 5 times a power of ten apart.
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

// Dates for a time axis: the first day of every few years, months or days, whichever
// gives about `count` of them between t0 and t1 (milliseconds).
export function dateTicks(t0, t1, count = 6) {
  const day = 86400000, span = Math.max(1, t1 - t0);
  const steps = [[1, "day"], [7, "day"], [1, "month"], [3, "month"], [6, "month"], [1, "year"], [2, "year"], [5, "year"], [10, "year"]];
  const size = { day, month: 30.44 * day, year: 365.25 * day };
  const [n, unit] = steps.find(([k, u]) => span / (k * size[u]) <= count) || steps[steps.length - 1];
  const d = new Date(t0);
  let cur = unit === "year" ? Date.UTC(Math.ceil(d.getUTCFullYear() / n) * n, 0, 1)
    : unit === "month" ? Date.UTC(d.getUTCFullYear(), Math.ceil(d.getUTCMonth() / n) * n, 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const out = [];
  while (cur <= t1) {
    if (cur >= t0) out.push(cur);
    const c = new Date(cur);
    cur = unit === "year" ? Date.UTC(c.getUTCFullYear() + n, 0, 1)
      : unit === "month" ? Date.UTC(c.getUTCFullYear(), c.getUTCMonth() + n, 1)
      : cur + n * day;
  }
  const label = (t) => new Date(t).toISOString().slice(0, unit === "year" ? 4 : unit === "month" ? 7 : 10);
  return out.map((t) => ({ t, label: label(t) }));
}

// A chart over time: lines (`series`, each {name, cls, values} aligned with `ts`), optional
// markers on the plot ({ts, value, cls, glyph, title}: trades), shaded windows ({from, to,
// title}: folds) and lanes under it ({name, cls, items: [{ts, title}]}: detected patterns,
// one strip per kind so that thousands of them never cover the line). Axes carry several
// round ticks. `area` fills the first series down to zero (a drawdown).
export function timeChart({ label, ts, series, format = (v) => v.toFixed(2), markers = [], shades = [], lanes = [], area = false, height = 300 }) {
  const W = 900, left = 62, right = 14, top = 10, laneH = 14, axisH = 22;
  const lanesH = lanes.length ? lanes.length * laneH + 8 : 0;
  const H = height + lanesH, plotBottom = height - axisH;
  const times = ts.map((t) => new Date(t).getTime());
  const t0 = times[0], t1 = times[times.length - 1];
  const all = series.flatMap((s) => s.values).filter((v) => typeof v === "number" && isFinite(v));
  let lo = Math.min(...all, ...(area ? [0] : [])), hi = Math.max(...all, ...(area ? [0] : []));
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.04;
  lo -= area ? 0 : pad; hi += pad;
  const x = (t) => left + (W - left - right) * ((t - t0) / Math.max(1, t1 - t0));
  const y = (v) => top + (plotBottom - top) * (1 - (v - lo) / (hi - lo));
  const path = (values) => values.map((v, i) => `${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const yTicks = niceTicks(lo, hi, 5);
  const xTicks = dateTicks(t0, t1, 8);
  const at = new Map(ts.map((t, i) => [t, i]));
  return h("figure", { class: "chart time" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
      shades.map((f, i) => s("rect", { class: `shade ${i % 2 ? "odd" : "even"}`, x: x(new Date(f.from).getTime()), y: top,
        width: Math.max(1, x(new Date(f.to).getTime()) - x(new Date(f.from).getTime())), height: plotBottom - top },
        s("title", {}, f.title))),
      yTicks.map((v) => [
        s("line", { class: "grid-line", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
        s("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)),
      ]),
      xTicks.map(({ t, label: text }) => [
        s("line", { class: "axis", x1: x(t), x2: x(t), y1: plotBottom, y2: plotBottom + 4 }),
        s("text", { class: "tick", x: x(t), y: plotBottom + 16, "text-anchor": "middle" }, text),
      ]),
      s("line", { class: "axis", x1: left, x2: W - right, y1: plotBottom, y2: plotBottom }),
      area && series[0] ? s("polygon", { class: `area ${series[0].cls}`,
        points: `${x(t0)},${y(0)} ${path(series[0].values)} ${x(t1)},${y(0)}` }) : null,
      series.map((sr) => s("polyline", { class: `line ${sr.cls}`, points: path(sr.values) })),
      markers.filter((m) => at.has(m.ts)).map((m) => s("text", {
        class: `marker ${m.cls}`, x: x(new Date(m.ts).getTime()), y: y(m.value) + (m.cls === "exit" ? -7 : 15), "text-anchor": "middle",
      }, m.glyph, s("title", {}, m.title))),
      lanes.map((lane, k) => {
        const ly = height + k * laneH;
        return [
          s("text", { class: "tick", x: left - 6, y: ly + 10, "text-anchor": "end" }, lane.name),
          lane.items.map((it) => s("rect", { class: `lane-mark ${lane.cls}`, x: x(new Date(it.ts).getTime()) - 1, y: ly + 1, width: 2, height: laneH - 3 },
            s("title", {}, it.title))),
        ];
      })),
    h("figcaption", {},
      series.map((sr) => h("span", { class: `legend ${sr.cls}` }, sr.name)),
      lanes.map((lane) => h("span", { class: `legend ${lane.cls}` }, `${lane.name}: ${lane.items.length}`)),
      markers.length ? h("span", { class: "muted" }, "▲ entry ▼ exit") : null));
}

const DIRECTIONS = [["bullish", "Bullish"], ["bearish", "Bearish"], ["neutral", "Neutral"]];

// A symbol's closes with the patterns detected on it in lanes under the line.
export function priceChart(symbol, bars, patterns, { markers = [] } = {}) {
  const closes = bars.map((b) => Number(b.close));
  const first = bars[0].ts.slice(0, 10), last = bars[bars.length - 1].ts.slice(0, 10);
  const lo = Math.min(...closes), hi = Math.max(...closes);
  return timeChart({
    label: `${symbol} closing prices from ${first} to ${last}, between ${lo.toFixed(2)} and ${hi.toFixed(2)}, with ${patterns.length} detected patterns` +
      (markers.length ? ` and ${markers.length} trade entries and exits` : ""),
    ts: bars.map((b) => b.ts),
    series: [{ name: "Close", cls: "price", values: closes }],
    markers,
    lanes: patterns.length ? DIRECTIONS.map(([key, name]) => ({
      name, cls: key,
      items: patterns.filter((p) => p.direction === key).map((p) => ({ ts: p.ts, title: `${p.ts.slice(0, 10)}: ${p.pattern} (strength ${p.strength})` })),
    })) : [],
  });
}
