// Research results: the shared leaderboard and your own, and any stored symbol's closing
// prices with every pattern detected on them. Each leaderboard row opens its strategy.

import { ApiError, get, query } from "./api.js";
import { priceChart } from "./chart.js";
import { clear, errorText, h, message, table, when } from "./ui.js";

const MAX_BARS = 10000;

export const num = (v, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : "—");
export const pct = (v) => (typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "—");
export const paramText = (params) => Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(" ");

export async function render(root, { signal }) {
  const board = h("section", { class: "card", "aria-labelledby": "board-title" }, h("h2", { id: "board-title" }, "Leaderboard"), message("loading", "Loading…"));
  const mine = h("section", { class: "card", "aria-labelledby": "mine-title" }, h("h2", { id: "mine-title" }, "Your strategies"), message("loading", "Loading…"));
  const symbol = h("select", { id: "symbol", name: "symbol" });
  const chart = h("div", { "aria-live": "polite" }, message("loading", "Loading the stored symbols…"));
  const prices = h("section", { class: "card", "aria-labelledby": "prices-title" },
    h("div", { class: "title-row" }, h("h2", { id: "prices-title" }, "Prices and patterns"),
      h("div", { class: "field inline" }, h("label", { for: "symbol" }, "Symbol"), symbol)),
    chart);
  clear(root, h("h1", {}, "Results"), board, mine, prices);

  loadBoard(board, signal);
  loadMine(mine, signal);
  try {
    const stored = (await get("/v1/symbols")).symbols.filter((s) => s.interval === "1d");
    if (signal.aborted) return;
    if (!stored.length) {
      symbol.disabled = true;
      clear(chart, message("empty", "No prices are stored yet. Ingest some with a prices.ingest job."));
      return;
    }
    clear(symbol, stored.map((s) => h("option", { value: s.symbol }, s.symbol)));
    symbol.value = stored.some((s) => s.symbol === "IBM") ? "IBM" : stored[0].symbol;
    const draw = () => loadChart(chart, symbol.value, signal);
    symbol.addEventListener("change", draw);
    draw();
  } catch (err) {
    if (!signal.aborted) clear(chart, message("error", errorText(err)));
  }
}

function boardTable(caption, entries, empty) {
  return table(caption, ["Rank", "Strategy", "Symbol", "Family", "Parameters", "Score", "Sharpe", "CAGR", "Max drawdown", "Total return"],
    entries.map((e) => h("tr", { "data-strategy-id": e.strategy_id },
      h("td", { class: "num" }, e.rank),
      h("td", { class: "num" }, h("a", { href: `#/strategies/${e.strategy_id}` }, `#${e.strategy_id}`)),
      h("th", { scope: "row" }, e.symbol),
      h("td", {}, e.family), h("td", { class: "mono small" }, paramText(e.params)),
      h("td", { class: "num" }, num(e.score, 3)), h("td", { class: "num" }, num(e.metrics?.sharpe)),
      h("td", { class: "num" }, pct(e.metrics?.cagr)), h("td", { class: "num" }, pct(e.metrics?.max_drawdown)),
      h("td", { class: "num" }, pct(e.metrics?.total_return)))),
    { empty });
}

async function loadBoard(section, signal) {
  const title = section.firstChild;
  try {
    const lb = await get("/v1/leaderboard");
    if (signal.aborted) return;
    clear(section, title,
      h("p", { class: "muted" }, `Published strategies ranked by ${lb.metric}, computed ${when(lb.created_at)}.`),
      boardTable("Leaderboard", lb.entries, "The leaderboard is empty: no published strategy has been scored yet."));
  } catch (err) {
    if (signal.aborted) return;
    clear(section, title, err instanceof ApiError && err.status === 404
      ? message("empty", "No shared leaderboard yet. It ranks published strategies once the hourly leaderboard.refresh has run; your own rank below at once.")
      : message("error", errorText(err)));
  }
}

async function loadMine(section, signal) {
  const title = section.firstChild;
  try {
    const lb = await get("/v1/leaderboard/mine" + query({ limit: 20 }));
    if (signal.aborted) return;
    clear(section, title,
      h("p", { class: "muted" }, `Your optimized and discovered strategies out of sample, ranked by ${lb.metric} now.`),
      boardTable("Your strategies", lb.entries, "None yet: submit a strategy.optimize or strategy.discover job, and its out-of-sample results rank here as soon as it succeeds."));
  } catch (err) {
    if (!signal.aborted) clear(section, title, message("error", errorText(err)));
  }
}

// Every page of a listing, following next_cursor until it ends (or `cap` items).
export async function allPages(path, params, key, signal, cap = Infinity) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path + query({ ...params, cursor }));
    items.push(...page[key]);
    cursor = page.next_cursor;
  } while (cursor && items.length < cap && !signal.aborted);
  return items;
}

export async function patternsSince(symbol, since, signal) {
  try {
    return await allPages("/v1/patterns", { symbol, since, limit: 1000 }, "patterns", signal);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return [];
    throw err;
  }
}

async function loadChart(target, symbol, signal) {
  clear(target, message("loading", `Loading ${symbol} prices…`));
  try {
    const bars = await allPages(`/v1/prices/${encodeURIComponent(symbol)}`, { interval: "1d", limit: 5000 }, "bars", signal, MAX_BARS);
    if (signal.aborted) return;
    if (bars.length < 2) {
      clear(target, message("empty", `Only ${bars.length} ${symbol} bar is stored: ingest more with a prices.ingest job.`));
      return;
    }
    const patterns = await patternsSince(symbol, bars[0].ts, signal);
    if (signal.aborted) return;
    clear(target, priceChart(symbol, bars, patterns),
      patterns.length ? null : h("p", { class: "muted" }, `No pattern detected on ${symbol} yet: a patterns.analyze job finds them.`));
  } catch (err) {
    if (!signal.aborted) clear(target, message("error", errorText(err)));
  }
}
