// An optimization's grid as a heatmap, from the `grid` its job's result stores per symbol:
// two parameters chosen from its axes, every other one fixed at the best set's value.

import { h, s } from "./ui.js";

function color(v, lo, hi) {
  if (v === null || v === undefined) return null;
  // diverging around 0 when the values straddle it (a Sharpe), else light to dark
  if (lo < 0 && hi > 0) {
    const t = v >= 0 ? v / hi : v / -lo;
    const [r, g, b] = v >= 0 ? [26, 127, 55] : [207, 34, 46];
    const a = 0.12 + 0.88 * Math.min(1, Math.abs(t));
    return `rgb(${Math.round(255 - (255 - r) * a)},${Math.round(255 - (255 - g) * a)},${Math.round(255 - (255 - b) * a)})`;
  }
  const t = hi > lo ? (v - lo) / (hi - lo) : 1;
  const a = 0.12 + 0.88 * t;
  return `rgb(${Math.round(255 - 246 * a)},${Math.round(255 - 150 * a)},${Math.round(255 - 37 * a)})`;
}

// The value at every cell of the chosen (x, y) plane, others at `fixed` indices.
function plane(values, dims, xi, yi, fixed) {
  const at = (idx) => idx.reduce((cube, i) => (cube === null || cube === undefined ? null : cube[i]), values);
  const rows = [];
  for (let j = 0; j < dims[yi]; j++) {
    const row = [];
    for (let i = 0; i < dims[xi]; i++) {
      const idx = fixed.slice();
      idx[xi] = i;
      if (yi !== xi) idx[yi] = j;
      row.push(at(idx));
    }
    rows.push(row);
  }
  return rows;
}

export function heatmap(symbol, grid, best) {
  const axes = grid.axes;
  const dims = axes.map((a) => a.values.length);
  const bestIdx = axes.map((a) => Math.max(0, a.values.indexOf(best?.[a.name])));
  const pick = (id, label, chosen) => h("select", { id, name: id, "aria-label": label },
    axes.map((a, k) => h("option", { value: String(k), selected: k === chosen }, a.name)));
  const figure = h("div", {});
  const xs = pick(`hx-${symbol}`, "Across", 0);
  const ys = pick(`hy-${symbol}`, "Down", Math.min(1, axes.length - 1));
  const controls = axes.length > 1 ? h("div", { class: "heatmap-controls" },
    h("label", { for: `hx-${symbol}` }, "Across"), xs, h("label", { for: `hy-${symbol}` }, "Down"), ys) : null;
  const draw = () => {
    let xi = Number(xs.value), yi = Number(ys.value);
    if (xi === yi && axes.length > 1) yi = axes.findIndex((_a, k) => k !== xi);
    const rows = plane(grid.values, dims, xi, yi, bestIdx);
    const flat = rows.flat().filter((v) => typeof v === "number");
    const lo = Math.min(...flat), hi = Math.max(...flat);
    const nx = dims[xi], ny = axes.length > 1 ? dims[yi] : 1;
    const cw = Math.max(6, Math.min(48, 760 / nx)), ch = Math.max(6, Math.min(28, 420 / ny));
    const left = 64, top = 8, W = left + cw * nx + 10, H = top + ch * ny + 40;
    const every = (n, size) => Math.max(1, Math.ceil(24 / size));
    const fixedText = axes.map((a, k) => (k === xi || k === yi ? null : `${a.name} = ${a.values[bestIdx[k]]}`)).filter(Boolean);
    figure.replaceChildren(h("figure", { class: "chart heatmap" },
      s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
        "aria-label": `${symbol}: in-sample ${grid.metric} over ${axes[xi].name}${axes.length > 1 ? ` and ${axes[yi].name}` : ""}, from ${lo.toFixed(2)} to ${hi.toFixed(2)}` },
        rows.map((row, j) => row.map((v, i) => {
          const isBest = i === bestIdx[xi] && (axes.length === 1 || j === bestIdx[yi]);
          const fill = color(v, lo, hi);
          const params = `${axes[xi].name}=${axes[xi].values[i]}` + (axes.length > 1 ? `, ${axes[yi].name}=${axes[yi].values[j]}` : "");
          return s("rect", { class: `cell${fill ? "" : " cell-none"}${isBest ? " cell-best" : ""}`, x: left + i * cw, y: top + j * ch, width: cw, height: ch,
            fill: fill || null, "data-value": v ?? "" },
          s("title", {}, `${params}: ${grid.metric} ${v === null || v === undefined ? "undefined" : v.toFixed(3)}${isBest ? " (chosen)" : ""}`));
        })),
        axes[xi].values.map((v, i) => (i % every(nx, cw) ? null :
          s("text", { class: "tick", x: left + i * cw + cw / 2, y: top + ch * ny + 14, "text-anchor": "middle" }, String(v)))),
        axes.length > 1 ? axes[yi].values.map((v, j) => (j % every(ny, ch) ? null :
          s("text", { class: "tick", x: left - 6, y: top + j * ch + ch / 2 + 4, "text-anchor": "end" }, String(v)))) : null,
        s("text", { class: "tick", x: left + (cw * nx) / 2, y: H - 4, "text-anchor": "middle" }, axes[xi].name),
        axes.length > 1 ? s("text", { class: "tick", x: 10, y: top + (ch * ny) / 2, "text-anchor": "start" }, axes[yi].name) : null),
      h("figcaption", {},
        h("span", {}, `In-sample ${grid.metric}; the outlined cell is the chosen set.`),
        fixedText.length ? h("span", {}, `Fixed at the best: ${fixedText.join(", ")}.`) : null,
        h("span", { class: "muted" }, "Grey: undefined (no trade, or not a usable set)."))));
  };
  xs.addEventListener("change", draw);
  ys.addEventListener("change", draw);
  draw();
  return h("div", { class: "heatmap-block", "data-symbol": symbol }, controls, figure);
}
