// Research results: the latest leaderboard, and a symbol's closing prices with the patterns
// detected on it. Until the research endpoints exist (or have data) the page says so.

import { ApiError, get, query } from "./api.js";
import { priceChart } from "./chart.js";
import { clear, errorText, h, message, table, when } from "./ui.js";

const SYMBOLS = ["AAPL", "GOOG", "IBM", "MSFT", "FB"];
const MAX_BARS = 5000;

export async function render(root, { signal }) {
  const board = h("section", { class: "card", "aria-labelledby": "board-title" }, h("h2", { id: "board-title" }, "Leaderboard"), message("loading", "Loading…"));
  const symbol = h("select", { id: "symbol", name: "symbol" }, SYMBOLS.map((s) => h("option", { value: s }, s)));
  const chart = h("div", { "aria-live": "polite" });
  const prices = h("section", { class: "card", "aria-labelledby": "prices-title" },
    h("div", { class: "title-row" }, h("h2", { id: "prices-title" }, "Prices and patterns"),
      h("div", { class: "field inline" }, h("label", { for: "symbol" }, "Symbol"), symbol)),
    chart);
  clear(root, h("h1", {}, "Results"), board, prices);

  loadBoard(board, signal);
  const draw = () => loadChart(chart, symbol.value, signal);
  symbol.addEventListener("change", draw);
  draw();
}

function notYet(err, what) {
  return err instanceof ApiError && err.status === 404
    ? message("empty", what)
    : message("error", errorText(err));
}

async function loadBoard(section, signal) {
  const title = section.firstChild;
  try {
    const lb = await get("/v1/leaderboard");
    if (signal.aborted) return;
    const num = (v, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : "—");
    const pct = (v) => (typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "—");
    clear(section, title,
      h("p", { class: "muted" }, `Ranked by ${lb.metric}, computed ${when(lb.created_at)}.`),
      table("Leaderboard", ["Rank", "Strategy", "Symbol", "Family", "Parameters", "Score", "Sharpe", "CAGR", "Max drawdown", "Total return"],
        lb.entries.map((e) => h("tr", {},
          h("td", { class: "num" }, e.rank), h("td", { class: "num" }, e.strategy_id), h("th", { scope: "row" }, e.symbol),
          h("td", {}, e.family), h("td", { class: "mono small" }, Object.entries(e.params || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
          h("td", { class: "num" }, num(e.score, 3)), h("td", { class: "num" }, num(e.metrics?.sharpe)),
          h("td", { class: "num" }, pct(e.metrics?.cagr)), h("td", { class: "num" }, pct(e.metrics?.max_drawdown)),
          h("td", { class: "num" }, pct(e.metrics?.total_return)))),
        { empty: "The leaderboard is empty: no strategy has been scored yet." }));
  } catch (err) {
    if (!signal.aborted) clear(section, title, notYet(err, "No leaderboard yet. It appears here once a leaderboard refresh job has run."));
  }
}

async function loadChart(target, symbol, signal) {
  clear(target, message("loading", `Loading ${symbol} prices…`));
  try {
    const bars = [];
    let cursor = null;
    do {  // pages come oldest first; follow them to the latest bar
      const page = await get(`/v1/prices/${encodeURIComponent(symbol)}` + query({ interval: "1d", limit: 1000, cursor }));
      bars.push(...page.bars);
      cursor = page.next_cursor;
    } while (cursor && bars.length < MAX_BARS && !signal.aborted);
    if (signal.aborted) return;
    if (bars.length < 2) {
      clear(target, message("empty", `No ${symbol} prices stored yet. Ingest them with a prices.ingest job.`));
      return;
    }
    let patterns = [];
    try {
      patterns = (await get("/v1/patterns" + query({ symbol, since: bars[0].ts, limit: 500 }))).patterns;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    if (signal.aborted) return;
    clear(target, priceChart(symbol, bars, patterns),
      patterns.length ? null : h("p", { class: "muted" }, `No pattern detected on ${symbol} yet.`));
  } catch (err) {
    if (!signal.aborted) clear(target, notYet(err, `No ${symbol} prices yet. They appear here once prices are ingested for ${symbol}.`));
  }
}
