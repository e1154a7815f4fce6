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
      s("text", { class: "tick", x: left - 4, y: y(max) + 4, "text-anchor": "end" }, String(max)),
      s("text", { class: "tick", x: left - 4, y: y(0) + 4, "text-anchor": "end" }, "0"),
      first ? s("text", { class: "tick", x: left, y: H - 4 }, tick(first)) : null,
      last ? s("text", { class: "tick", x: W, y: H - 4, "text-anchor": "end" }, `${tick(last)} (now)`) : null,
      bars),
    h("figcaption", {},
      OUTCOMES.map(([key, name]) => h("span", { class: `legend ${key}` }, name)),
      sum === 0 ? h("span", { class: "muted" }, " — no job finished in this window") : null));
}

const MARK = { bullish: "▲", bearish: "▼", neutral: "●" };

export function priceChart(symbol, bars, patterns) {
  const W = 900, H = 320, left = 56, right = 12, top = 12, bottom = 26;
  const closes = bars.map((b) => Number(b.close));
  const lo = Math.min(...closes), hi = Math.max(...closes);
  const span = hi - lo || 1;
  const t0 = new Date(bars[0].ts).getTime(), t1 = new Date(bars[bars.length - 1].ts).getTime();
  const x = (ts) => left + (W - left - right) * ((new Date(ts).getTime() - t0) / Math.max(1, t1 - t0));
  const y = (v) => top + (H - top - bottom) * (1 - (v - lo) / span);
  const line = bars.map((b) => `${x(b.ts).toFixed(1)},${y(Number(b.close)).toFixed(1)}`).join(" ");
  const closeAt = new Map(bars.map((b) => [b.ts.slice(0, 10), Number(b.close)]));
  const markers = patterns.filter((p) => closeAt.has(p.ts.slice(0, 10))).map((p) => {
    const cx = x(p.ts), cy = y(closeAt.get(p.ts.slice(0, 10)));
    const dy = p.direction === "bearish" ? -10 : p.direction === "bullish" ? 14 : 4;
    return s("text", { class: `marker ${p.direction}`, x: cx, y: cy + dy, "text-anchor": "middle" },
      MARK[p.direction] || "●",
      s("title", {}, `${p.ts.slice(0, 10)}: ${p.pattern} (${p.direction}, strength ${p.strength})`));
  });
  const fmt = (v) => v.toFixed(2);
  return h("figure", { class: "chart price" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${symbol} closing prices from ${bars[0].ts.slice(0, 10)} to ${bars[bars.length - 1].ts.slice(0, 10)}, between ${fmt(lo)} and ${fmt(hi)}, with ${markers.length} detected patterns` },
      s("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }),
      s("text", { class: "tick", x: left - 6, y: y(hi) + 4, "text-anchor": "end" }, fmt(hi)),
      s("text", { class: "tick", x: left - 6, y: y(lo) + 4, "text-anchor": "end" }, fmt(lo)),
      s("text", { class: "tick", x: left, y: H - 6 }, bars[0].ts.slice(0, 10)),
      s("text", { class: "tick", x: W - right, y: H - 6, "text-anchor": "end" }, bars[bars.length - 1].ts.slice(0, 10)),
      s("polyline", { class: "price-line", points: line }),
      markers),
    h("figcaption", {},
      h("span", { class: "legend line" }, "Close"),
      h("span", { class: "legend bullish" }, "▲ bullish"),
      h("span", { class: "legend bearish" }, "▼ bearish"),
      h("span", { class: "legend neutral" }, "● neutral")));
}
