// Charts drawn as inline SVG: a stacked bar per minute for throughput, a closing-price line
// with pattern markers. The viewBox scales with the container, so they fit any width.

import { h, s } from "./ui.js";

const OUTCOMES = [["succeeded", "Succeeded"], ["dead", "Dead"], ["cancelled", "Cancelled"]];

export function throughputChart(points) {
  const W = 600, H = 160, left = 34, bottom = 20, top = 14;
  const total = (p) => p.succeeded + p.dead + p.cancelled;
  const most = Math.max(0, ...points.map(total));
  const ticks = countTicks(most);
  const max = ticks[ticks.length - 1];
  const slot = (W - left) / Math.max(1, points.length);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const bars = [];
  const marks = [];
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
    // A minute with dead jobs gets a red dot above its bar: one dead job among hundreds
    // would otherwise be a sliver of red too thin to see.
    if (p.dead) {
      marks.push(s("circle", { class: "dead-mark", cx: left + i * slot + slot / 2, cy: y(base) - 6, r: 3.5, "data-dead": p.dead },
        s("title", {}, `${label}: ${p.dead} dead`)));
    }
  });
  const first = points[0], last = points[points.length - 1];
  const tick = (p) => new Date(p.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const sum = points.reduce((a, p) => a + total(p), 0);
  const dead = points.reduce((a, p) => a + p.dead, 0);
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Jobs finished per minute over the last ${points.length} minutes: ${sum} in all, ${dead} dead, at most ${most} in a minute` },
      s("line", { class: "axis", x1: left, x2: W, y1: y(0), y2: y(0) }),
      ticks.map((v) => [
        v ? s("line", { class: "grid-line", x1: left, x2: W, y1: y(v), y2: y(v) }) : null,
        s("text", { class: "tick", x: left - 4, y: y(v) + 4, "text-anchor": "end" }, String(v)),
      ]),
      first ? s("text", { class: "tick", x: left, y: H - 4 }, tick(first)) : null,
      last ? s("text", { class: "tick", x: W, y: H - 4, "text-anchor": "end" }, `${tick(last)} (now)`) : null,
      bars, marks),
    h("figcaption", {},
      OUTCOMES.map(([key, name]) => h("span", { class: `legend ${key}` }, name)),
      h("span", { class: "legend dead-mark" }, "a minute with dead jobs"),
      sum === 0 ? h("span", { class: "muted" }, " — no job finished in this window") : null));
}

// Whole-number ticks from 0 for a count axis: at least 0..4 (so an axis whose largest value
// is 1 still reads as a scale), 1, 2 or 5 times a power of ten apart, the last one at or
// above `max`: between 3 and 6 ticks.
export function countTicks(max) {
  const top = Math.max(4, Math.ceil(max));
  let step = 1;
  for (let power = 1; top / step > 5; power *= 10) {
    step = [1, 2, 5, 10].map((m) => m * power).find((v) => top / v <= 5) ?? 10 * power;
  }
  const ticks = [];
  for (let v = 0; v < top + step; v += step) ticks.push(v);
  return ticks;
}

// Clock times for an axis over minutes to a day: every 1, 2, 5, 10, 15, 30 minutes or 1, 2,
// 3, 6 hours, whichever gives at most `count` of them between t0 and t1 (milliseconds).
export function clockTicks(t0, t1, count = 7) {
  const minute = 60000;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720].map((m) => m * minute);
  const step = steps.find((v) => (t1 - t0) / v <= count) || steps[steps.length - 1];
  const out = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    out.push({ t, label: new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
  }
  return out;
}

// Counts per time bucket as stacked bars (`stacks`: [{key, name, values}] aligned with `ts`),
// on a count axis from 0 with several whole-number ticks and clock times under it.
export function stackedBars({ label, ts, stacks, height = 180, empty = "nothing in this window" }) {
  const W = 900, left = 46, right = 14, top = 10, axisH = 22, plotBottom = height - axisH;
  const times = ts.map((t) => new Date(t).getTime());
  const step = times.length > 1 ? times[1] - times[0] : 60000;
  const t0 = times[0], t1 = times[times.length - 1] + step;
  const totals = ts.map((_, i) => stacks.reduce((a, st) => a + (st.values[i] || 0), 0));
  const ticks = countTicks(Math.max(0, ...totals));
  const max = ticks[ticks.length - 1];
  const x = (t) => left + (W - left - right) * ((t - t0) / Math.max(1, t1 - t0));
  const y = (v) => top + (plotBottom - top) * (1 - v / max);
  const slot = (W - left - right) / Math.max(1, ts.length);
  const when = (i) => new Date(times[i]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const bars = [];
  ts.forEach((_, i) => {
    let base = 0;
    for (const st of stacks) {
      const v = st.values[i] || 0;
      if (!v) continue;
      bars.push(s("rect", { class: `bar ${st.key}`, x: x(times[i]) + (slot > 3 ? 1 : 0), width: Math.max(1, slot - (slot > 3 ? 2 : 0)),
        y: y(base + v), height: y(base) - y(base + v) }, s("title", {}, `${when(i)}: ${v} ${st.name.toLowerCase()}`)));
      base += v;
    }
  });
  const sum = totals.reduce((a, v) => a + v, 0);
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": `${label}: ${sum} in all` },
      ticks.map((v) => [
        v ? s("line", { class: "grid-line", x1: left, x2: W - right, y1: y(v), y2: y(v) }) : null,
        s("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)),
      ]),
      clockTicks(t0, t1).map(({ t, label: text }) => [
        s("line", { class: "axis", x1: x(t), x2: x(t), y1: plotBottom, y2: plotBottom + 4 }),
        s("text", { class: "tick", x: x(t), y: plotBottom + 16, "text-anchor": edgeAnchor(x(t), left, W - right) }, text),
      ]),
      s("line", { class: "axis", x1: left, x2: W - right, y1: plotBottom, y2: plotBottom }),
      bars),
    h("figcaption", {},
      stacks.map((st) => h("span", { class: `legend ${st.key}` }, st.name)),
      sum === 0 ? h("span", { class: "muted" }, ` — ${empty}`) : null));
}

// Round values for an axis: about `count` of them and never fewer than three, 1, 2, 2.5 or
// 5 times a power of ten apart. (The first round step at or above (hi - lo) / count can leave
// two: 18.9 to 545 in steps of 200.)
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const steps = [0.5, 1, 2, 2.5, 5, 10].map((m) => m * power);
  const within = (step) => {
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  };
  let i = steps.findIndex((v) => v >= raw);
  let ticks = within(steps[i]);
  while (ticks.length < 3 && i > 0) ticks = within(steps[--i]);
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
// `xTicks` (t0, t1 → [{t, label}]) replaces the date ticks (clockTicks for hours); `counts`
// puts the y axis on whole numbers from 0 (countTicks); `min` bounds the axis from below (0
// for durations). A null value leaves a gap in its line.
export function timeChart({ label, ts, series, format = (v) => v.toFixed(2), markers = [], shades = [], lanes = [], area = false, height = 300, xTicks: xTicksOf = dateTicks, counts = false, min = -Infinity }) {
  const W = 900, left = 62, right = 14, top = 10, laneH = 14, axisH = 22;
  const lanesH = lanes.length ? lanes.length * laneH + 8 : 0;
  const H = height + lanesH, plotBottom = height - axisH;
  const times = ts.map((t) => new Date(t).getTime());
  const t0 = times[0], t1 = times[times.length - 1];
  const all = series.flatMap((s) => s.values).filter((v) => typeof v === "number" && isFinite(v));
  let lo = Math.min(...all, ...(area ? [0] : [])), hi = Math.max(...all, ...(area ? [0] : []));
  if (!all.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.04;
  lo -= area ? 0 : pad; hi += pad;
  lo = Math.max(lo, min);
  const countAxis = counts ? countTicks(Math.max(0, ...all)) : null;
  if (countAxis) { lo = 0; hi = countAxis[countAxis.length - 1]; }
  const x = (t) => left + (W - left - right) * ((t - t0) / Math.max(1, t1 - t0));
  const y = (v) => top + (plotBottom - top) * (1 - (v - lo) / (hi - lo));
  const path = (values) => values.map((v, i) => `${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  // Runs of numbers between gaps, each drawn as its own polyline (a lone point as a dot).
  const runs = (values) => {
    const out = [];
    let cur = [];
    values.forEach((v, i) => {
      if (typeof v === "number" && isFinite(v)) cur.push(`${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
      else if (cur.length) { out.push(cur); cur = []; }
    });
    if (cur.length) out.push(cur);
    return out;
  };
  const yTicks = countAxis || niceTicks(lo, hi, 5);
  const xTicks = xTicksOf(t0, t1, 8);
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
        s("text", { class: "tick", x: x(t), y: plotBottom + 16, "text-anchor": edgeAnchor(x(t), left, W - right) }, text),
      ]),
      s("line", { class: "axis", x1: left, x2: W - right, y1: plotBottom, y2: plotBottom }),
      area && series[0] ? s("polygon", { class: `area ${series[0].cls}`,
        points: `${x(t0)},${y(0)} ${path(series[0].values)} ${x(t1)},${y(0)}` }) : null,
      series.map((sr) => runs(sr.values).map((pts) => pts.length > 1
        ? s("polyline", { class: `line ${sr.cls}`, points: pts.join(" ") })
        : s("circle", { class: `dot ${sr.cls}`, cx: pts[0].split(",")[0], cy: pts[0].split(",")[1], r: 2 }))),
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

// A tick's label near an end of the axis is anchored to that end, so it is not cut off.
function edgeAnchor(at, start, end) {
  if (at > end - 40) return "end";
  if (at < start + 40) return "start";
  return "middle";
}
