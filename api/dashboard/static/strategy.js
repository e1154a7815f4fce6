// One strategy run: its parameters, its metrics in and out of sample beside buy-and-hold,
// its equity and drawdown recomputed from the stored prices, its trades on the price chart,
// and, for an optimization, the grid it was chosen from.

import { ApiError, get } from "./api.js";
import { timeChart, priceChart } from "./chart.js";
import { heatmap } from "./heatmap.js";
import { num, paramText, patternsSince, pct } from "./results.js";
import { clear, errorText, h, message, table } from "./ui.js";

const SAMPLE = { in: "In sample", out: "Out of sample", walk_forward: "Walk-forward (out of sample)" };
const ROWS = [
  ["Total return", "total_return", pct], ["CAGR", "cagr", pct], ["Sharpe", "sharpe", num],
  ["Sortino", "sortino", num], ["Max drawdown", "max_drawdown", pct],
  ["Longest drawdown (bars)", "max_drawdown_duration", (v) => (v ?? "—")], ["Calmar", "calmar", num],
  ["Annual volatility", "annual_volatility", pct], ["Win rate", "win_rate", pct],
  ["Trades", "trades", (v) => (v ?? "—")], ["Exposure", "exposure", pct],
];
const MAX_TRADES = 200;

export async function render(root, { params, signal }) {
  const id = Number(params[0]);
  const run = await get(`/v1/strategies/${id}`);
  const [runs, curve] = await Promise.all([
    get(`/v1/strategies/${id}/runs`).then((r) => r.runs),
    get(`/v1/strategies/${id}/curve`).catch((err) => err),
  ]);
  if (signal.aborted) return;
  const curveSection = h("section", { class: "card", "aria-labelledby": "curve-title" }, h("h2", { id: "curve-title" }, "Equity and drawdown"));
  const priceSection = h("section", { class: "card", "aria-labelledby": "trades-title" }, h("h2", { id: "trades-title" }, "Trades on the price chart"));
  const gridSection = h("section", { class: "card", "aria-labelledby": "grid-title", hidden: run.kind !== "strategy.optimize" },
    h("h2", { id: "grid-title" }, "The grid it was chosen from"), message("loading", "Loading the optimization's result…"));
  clear(root,
    h("div", { class: "title-row start" },
      h("h1", {}, `${run.symbol} · ${run.family} `, h("span", { class: "kind" }, `#${run.id}`))),
    h("section", { class: "card", "aria-labelledby": "params-title" },
      h("h2", { id: "params-title" }, "Strategy"),
      h("dl", { class: "details" },
        ...pair("Parameters", h("span", { class: "mono" }, paramText(run.params))),
        ...pair("Sample", SAMPLE[run.sample]),
        ...pair("Bars", `${run.start_ts.slice(0, 10)} to ${run.end_ts.slice(0, 10)} (${run.bars} returns)`),
        ...pair("Costs", `${(run.cost * 10000).toFixed(1)} bp per trade, risk-free ${pct(run.risk_free)}`),
        ...pair("Job", h("a", { href: `#/jobs/${run.job_id}` }, `${run.kind} #${run.job_id}`)),
        ...pair("Shared", run.published ? "published, on the shared leaderboard" : "yours only")),
      metricsTable(runs, curve instanceof Error ? null : curve)),
    curveSection, priceSection, gridSection);

  if (curve instanceof Error) {
    const text = curve instanceof ApiError ? curve.message : errorText(curve);
    curveSection.append(message(curve instanceof ApiError && curve.status === 409 ? "empty" : "error", text));
    priceSection.hidden = true;
  } else {
    drawCurve(curveSection, curve);
    drawTrades(priceSection, curve, signal);
  }
  if (run.kind === "strategy.optimize") drawGrid(gridSection, run, signal);
}

function pair(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function metricsTable(runs, curve) {
  const columns = runs.map((r) => ({ title: SAMPLE[r.sample], metrics: r.metrics }));
  if (curve) columns.push({ title: `Buy and hold (${SAMPLE[curve.sample].toLowerCase()})`, metrics: curve.buy_and_hold_metrics });
  return h("div", { class: "metrics-table" },
    table("Metrics", ["Metric", ...columns.map((c) => c.title)],
      ROWS.map(([label, key, fmt]) => h("tr", {}, h("th", { scope: "row" }, label),
        columns.map((c) => h("td", { class: "num" }, fmt(c.metrics?.[key])))))),
    curve && !curve.matches_stored ? message("error", "The prices stored now give other figures than the stored ones: the bars were re-ingested since. Run the job again.") : null);
}

function drawCurve(section, curve) {
  const last = (a) => a[a.length - 1];
  section.append(
    timeChart({
      label: `Equity of strategy ${curve.strategy_id} from ${curve.ts[0].slice(0, 10)} to ${last(curve.ts).slice(0, 10)}: ends at ${last(curve.equity).toFixed(3)}, buy and hold at ${last(curve.buy_and_hold).toFixed(3)}`,
      ts: curve.ts,
      series: [
        { name: "Strategy (growth of 1, after costs)", cls: "equity", values: curve.equity },
        { name: "Buy and hold", cls: "hold", values: curve.buy_and_hold },
      ],
      shades: curve.folds.map((f, i) => ({ from: f.start_ts, to: f.end_ts, title: `fold ${i + 1}: ${f.traded ? paramText(f.params) : "flat (nothing defined before it)"}` })),
    }),
    timeChart({
      label: `Drawdown of strategy ${curve.strategy_id}: at worst ${pct(Math.min(...curve.drawdown))}`,
      ts: curve.ts, height: 160, area: true, format: (v) => `${(v * 100).toFixed(0)}%`,
      series: [{ name: "Drawdown", cls: "drawdown", values: curve.drawdown }],
    }));
}

async function drawTrades(section, curve, signal) {
  const bars = curve.ts.map((ts, i) => ({ ts, close: curve.close[i] }));
  const markers = curve.trades.flatMap((t) => [
    { ts: t.entry_ts, value: t.entry_price, cls: "entry", glyph: "▲", title: `${t.entry_ts.slice(0, 10)}: ${t.direction} at ${t.entry_price.toFixed(2)}` },
    t.exit_ts ? { ts: t.exit_ts, value: t.exit_price, cls: "exit", glyph: "▼", title: `${t.exit_ts.slice(0, 10)}: out at ${t.exit_price.toFixed(2)}, ${pct(t.trade_return)}` } : null,
  ]).filter(Boolean);
  let patterns = [];
  try {
    patterns = (await patternsSince(curve.symbol, curve.ts[0], signal)).filter((p) => p.ts <= curve.ts[curve.ts.length - 1]);
  } catch { /* the trades are shown without them */ }
  if (signal.aborted) return;
  const shown = curve.trades.slice(0, MAX_TRADES);
  section.append(priceChart(curve.symbol, bars, patterns, { markers }),
    table("Trades", ["Direction", "Entry", "Price", "Exit", "Price", "Bars", "Return"],
      shown.map((t) => h("tr", {},
        h("td", {}, t.direction), h("td", {}, t.entry_ts.slice(0, 10)), h("td", { class: "num" }, t.entry_price.toFixed(2)),
        h("td", {}, t.exit_ts ? t.exit_ts.slice(0, 10) : "open"), h("td", { class: "num" }, t.exit_price === null ? "—" : t.exit_price.toFixed(2)),
        h("td", { class: "num" }, t.bars), h("td", { class: "num" }, pct(t.trade_return)))),
      { empty: "This run never traded." }),
    ...(curve.trades.length > MAX_TRADES ? [h("p", { class: "muted" }, `The first ${MAX_TRADES} of ${curve.trades.length} trades; all are marked on the chart.`)] : []));
}

async function drawGrid(section, run, signal) {
  const title = section.firstChild;
  try {
    const grid = await get(`/v1/strategies/${run.id}/grid`);
    if (signal.aborted) return;
    clear(section, title, heatmap(run.symbol, grid, grid.best ?? run.params));
  } catch (err) {
    if (!signal.aborted) clear(section, title, message(err instanceof ApiError && err.status === 404 ? "empty" : "error", errorText(err)));
  }
}
