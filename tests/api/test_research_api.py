"""The research read side over a real database, filled by the kinds' own code: prices,
strategies (owned like jobs, or published), leaderboards and patterns, with pagination and
errors; and who may submit the kinds that write shared research."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from kinds.prices import SampleProvider, store_bars, validate
from tests.support import run_inline


@pytest.fixture
async def research(api, store):
    for symbol in ("IBM", "MSFT"):
        bars = SampleProvider().fetch(symbol, date(2009, 1, 1), date(2012, 12, 31), "1d")
        await store_bars(store.pool, symbol, "1d", "sample", validate(symbol, bars))
    grid = {
        "fast": {"start": 5, "stop": 20, "step": 5},
        "slow": {"start": 30, "stop": 90, "step": 30},
    }
    mine = await run_inline(
        store, "strategy.optimize", {"symbols": ["IBM"], "grid": grid}, owner="key:alice"
    )
    await run_inline(
        store, "strategy.optimize", {"symbols": ["IBM"], "grid": grid}, owner="key:bob"
    )
    # the platform's own research (its schedules' jobs) is published
    shared = await run_inline(
        store, "strategy.optimize", {"symbols": ["MSFT"], "grid": grid}, owner="system", finish=True
    )
    found = await run_inline(store, "patterns.analyze", {"symbols": ["IBM"]}, owner="system")
    board = await run_inline(store, "leaderboard.refresh", {"limit": 5}, owner="system")
    return {"optimized": mine, "shared": shared, "board": board, "patterns": found["patterns"]}


async def test_prices_page_through_every_bar_in_order(api, store, research):
    seen = []
    cursor = None
    while True:
        r = await api.get(f"/v1/prices/IBM?limit=300{f'&cursor={cursor}' if cursor else ''}")
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [b["ts"] for b in body["bars"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    stored = await store.pool.fetchval("SELECT count(*) FROM price_bar WHERE symbol = 'IBM'")
    assert len(seen) == len(set(seen)) == stored > 1000  # 2009–2012, every bar once
    assert seen == sorted(seen)
    r = await api.get("/v1/prices/IBM?start=2012-12-01T00:00:00Z&end=2012-12-31T23:59:59Z")
    assert len(r.json()["bars"]) == 20 and r.json()["bars"][0]["source"] == "sample"
    assert {b["adjustment"] for b in r.json()["bars"]} == {"split_dividend"}


async def test_prices_of_an_unknown_symbol_say_how_to_get_them(api, research):
    r = await api.get("/v1/prices/AAPL")
    assert r.status_code == 404
    assert "submit a prices.ingest job" in r.json()["error"]["message"]
    assert (await api.get("/v1/prices/ibm;drop")).status_code == 422
    assert (await api.get("/v1/prices/IBM?cursor=abc")).status_code == 422
    r = await api.client.get("/v1/prices/IBM")
    assert r.status_code == 401


async def test_strategies_are_their_owners_or_published_and_sort_by_a_metric(api, research):
    r = await api.get("/v1/strategies?symbol=IBM&sample=out&sort=sharpe&limit=3")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {s["owner"] for s in body["strategies"]} == {"key:alice"}  # not bob's IBM runs
    assert not any(s["published"] for s in body["strategies"])
    sharpes = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = (
            await api.get(f"/v1/strategies?symbol=IBM&sample=out&sort=sharpe&limit=3{suffix}")
        ).json()
        sharpes += [s["metrics"]["sharpe"] for s in page["strategies"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(sharpes) == 4 * 3  # every out-of-sample run of alice's grid, once
    defined = [s for s in sharpes if s is not None]
    assert defined == sorted(defined, reverse=True) and sharpes[: len(defined)] == defined
    everyone = (await api.get("/v1/strategies?limit=500", who="root")).json()["strategies"]
    assert {s["owner"] for s in everyone} == {"key:alice", "key:bob", "system"}
    bobs = next(s for s in everyone if s["owner"] == "key:bob")
    assert (await api.get(f"/v1/strategies/{bobs['id']}")).status_code == 404
    visible = (await api.get("/v1/strategies?limit=500")).json()["strategies"]
    assert {s["owner"] for s in visible} == {"key:alice", "system"}  # own, and the published
    assert all(s["published"] for s in visible if s["owner"] == "system")
    shared = research["shared"]["symbols"]["MSFT"]["best"]["strategy_id"]
    assert (await api.get(f"/v1/strategies/{shared}", who="bob")).status_code == 200
    best = research["optimized"]["symbols"]["IBM"]["best"]
    mine = (await api.get(f"/v1/strategies/{best['strategy_id']}")).json()
    assert mine["selected"] and mine["sample"] == "out"
    assert mine["conventions"]["periods_per_year"] == 252 and mine["conventions"]["ddof"] == 1
    assert (await api.get("/v1/strategies?sort=nope")).status_code == 422


async def test_the_leaderboard_is_shared_and_kept_by_snapshot(api, research):
    latest = await api.get("/v1/leaderboard", who="bob")
    assert latest.status_code == 200, latest.text
    board = latest.json()
    assert board["id"] == research["board"]["snapshot_id"]
    assert [e["rank"] for e in board["entries"]] == list(range(1, len(board["entries"]) + 1))
    assert board["entries"] and {e["symbol"] for e in board["entries"]} == {
        "MSFT"
    }  # published only
    assert research["board"]["entries"] == len(board["entries"])
    same = (await api.get(f"/v1/leaderboard/{board['id']}")).json()
    assert same == board
    assert (await api.get("/v1/leaderboard/999999")).status_code == 404


async def test_no_leaderboard_yet_is_a_404_that_says_what_to_run(api):
    r = await api.get("/v1/leaderboard")
    assert r.status_code == 404 and "leaderboard.refresh" in r.json()["error"]["message"]


async def test_patterns_filter_and_page_newest_first(api, research):
    first = (await api.get("/v1/patterns?symbol=IBM&limit=5")).json()
    assert len(first["patterns"]) == 5 and first["next_cursor"]
    rest = (
        await api.get(f"/v1/patterns?symbol=IBM&limit=1000&cursor={first['next_cursor']}")
    ).json()
    stamps = [p["ts"] for p in first["patterns"] + rest["patterns"]]
    assert stamps == sorted(stamps, reverse=True)
    ids = [p["id"] for p in first["patterns"] + rest["patterns"]]
    assert len(ids) == len(set(ids)) == research["patterns"]
    dojis = (await api.get("/v1/patterns?pattern=doji&since=2012-01-01T00:00:00Z")).json()
    assert dojis["patterns"] and {p["pattern"] for p in dojis["patterns"]} == {"doji"}
    assert min(p["ts"] for p in dojis["patterns"]) >= "2012-01-01"
    assert (await api.get("/v1/patterns?pattern=nope")).status_code == 422


async def test_only_admins_submit_what_every_user_reads(api):
    for kind, payload in (
        ("prices.ingest", {"symbols": ["AAPL"], "provider": "synthetic"}),
        ("patterns.analyze", {"symbols": ["AAPL"]}),
        ("leaderboard.refresh", {"limit": 1}),
        ("strategy.optimize", {"symbols": ["AAPL"], "publish": True}),
    ):
        r = await api.post("/v1/jobs", json={"kind": kind, "payload": payload})
        assert r.status_code == 403, (kind, r.text)
        assert "only an admin may submit" in r.json()["error"]["message"]
        r = await api.post("/v1/jobs/batch", json={"jobs": [{"kind": kind, "payload": payload}]})
        assert r.status_code == 403 and r.json()["error"]["message"].startswith("jobs[0]:")
        r = await api.post("/v1/jobs", who="root", json={"kind": kind, "payload": payload})
        assert r.status_code == 201, r.text
    mine = {"kind": "strategy.optimize", "payload": {"symbols": ["AAPL"]}}
    assert (await api.post("/v1/jobs", json=mine)).status_code == 201  # private research


async def test_synthetic_bars_never_replace_market_data(store):
    from kinds.prices import SyntheticProvider

    real = validate("IBM", SampleProvider().fetch("IBM", date(2012, 1, 1), date(2012, 1, 31)))
    await store_bars(store.pool, "IBM", "1d", "sample", real)
    fake = validate(
        "IBM", SyntheticProvider(seed=1).fetch("IBM", date(2012, 1, 1), date(2012, 1, 31))
    )
    await store_bars(store.pool, "IBM", "1d", "synthetic", fake)
    rows = await store.pool.fetch(
        "SELECT ts, close, source FROM price_bar WHERE ts = ANY($1::timestamptz[]) ORDER BY ts",
        list(real["ts"].dt.to_pydatetime()),
    )
    assert [r["source"] for r in rows] == ["sample"] * len(real)
    assert [r["close"] for r in rows] == real["close"].tolist()


async def test_research_filters_repeat_and_any_value_matches(api, research):
    r = await api.get("/v1/strategies?symbol=IBM&symbol=MSFT&sample=in&limit=500", who="root")
    assert r.status_code == 200, r.text
    assert {s["symbol"] for s in r.json()["strategies"]} == {"IBM", "MSFT"}
    assert {s["sample"] for s in r.json()["strategies"]} == {"in"}
    only = await api.get("/v1/strategies?symbol=MSFT&limit=500", who="root")
    assert {s["symbol"] for s in only.json()["strategies"]} == {"MSFT"}
    found = {p["pattern"] for p in (await api.get("/v1/patterns?limit=1000")).json()["patterns"]}
    assert len(found) >= 2
    two = sorted(found)[:2]
    r = await api.get(f"/v1/patterns?pattern={two[0]}&pattern={two[1]}&limit=1000")
    assert {p["pattern"] for p in r.json()["patterns"]} == set(two)
    assert (await api.get("/v1/strategies?symbol=ibm;x")).status_code == 422


async def test_counts_are_served_as_integers(api, research):
    runs = (await api.get("/v1/strategies?limit=5", who="root")).json()["strategies"]
    assert runs
    for run in runs:
        for name in ("trades", "max_drawdown_duration"):
            value = run["metrics"][name]
            assert value is None or type(value) is int, (name, value)
    board = (await api.get("/v1/leaderboard")).json()
    assert board["entries"]
    for entry in board["entries"]:
        assert type(entry["metrics"]["trades"]) is int


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        (
            {"symbols": ["IBM"], "grid": {"fast": {"start": 5, "stop": 9, "step": 1}}},
            "grid",
            "lacks slow",
        ),
        ({"symbols": ["IBM"], "start": "2012-01-01", "end": "2011-01-01"}, "end", "before start"),
    ],
)
async def test_a_whole_payload_check_names_the_field_it_concerns(api, payload, field, says):
    r = await api.post("/v1/jobs", json={"kind": "strategy.optimize", "payload": payload})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert [d["field"] for d in error["details"]] == [field]
    assert f"payload.{field}: " in error["message"] and says in error["message"]
    assert "payload.body" not in error["message"]


async def test_each_user_has_a_leaderboard_of_its_own_strategies(api, research):
    mine = await api.get("/v1/leaderboard/mine?metric=sharpe&limit=50")
    assert mine.status_code == 200, mine.text
    board = mine.json()
    assert board["owner"] == "key:alice" and board["entries"]
    scores = [e["score"] for e in board["entries"]]
    assert scores == sorted(scores, reverse=True)
    assert [e["rank"] for e in board["entries"]] == list(range(1, len(scores) + 1))
    for entry in board["entries"]:
        run = (await api.get(f"/v1/strategies/{entry['strategy_id']}")).json()
        assert run["owner"] == "key:alice" and run["selected"] and run["sample"] == "out"
        assert run["metrics"]["sharpe"] == entry["score"]
    bobs = (await api.get("/v1/leaderboard/mine", who="bob")).json()["entries"]
    assert bobs and not {e["strategy_id"] for e in bobs} & {
        e["strategy_id"] for e in board["entries"]
    }
    assert (await api.get("/v1/leaderboard/mine", who="root")).json()["entries"] == []
    assert (await api.get("/v1/leaderboard/mine?metric=nope")).status_code == 422
    for metric in ("trades", "max_drawdown_duration", "win_rate"):  # counts are integers
        r = await api.get(f"/v1/leaderboard/mine?metric={metric}&window_days=1")
        assert r.status_code == 200, (metric, r.text)
        assert r.json()["entries"], metric


async def test_without_a_shared_leaderboard_the_answer_says_where_your_own_is(api):
    r = await api.get("/v1/leaderboard")
    assert r.status_code == 404
    assert "GET /v1/leaderboard/mine" in r.json()["error"]["message"]


def _total_return(equity: list[float]) -> float:
    return equity[-1] / equity[0] - 1.0


async def test_a_runs_curve_is_recomputed_from_the_prices_and_is_what_was_scored(
    api, store, research
):
    """Every one of alice's optimized runs, in- and out-of-sample: the curve's metrics are
    the stored ones, its equity ends at the stored total return, and its trades are as many
    as the stored count (plus one still open at the end)."""
    page = (await api.get("/v1/strategies?symbol=IBM&limit=100")).json()["strategies"]
    assert {s["sample"] for s in page} == {"in", "out"}
    for run in page:
        r = await api.get(f"/v1/strategies/{run['id']}/curve")
        assert r.status_code == 200, r.text
        curve = r.json()
        assert curve["matches_stored"] is True
        assert curve["ts"][0] == run["start_ts"] and curve["ts"][-1] == run["end_ts"]
        assert len(curve["ts"]) == len(curve["equity"]) == run["bars"] + 1
        assert len(curve["buy_and_hold"]) == len(curve["drawdown"]) == len(curve["close"])
        got = _total_return(curve["equity"])
        assert abs(got - run["metrics"]["total_return"]) < 1e-9
        assert min(curve["drawdown"]) == pytest.approx(run["metrics"]["max_drawdown"], abs=1e-9)
        closed = [t for t in curve["trades"] if t["exit_ts"] is not None]
        assert len(closed) == run["metrics"]["trades"]
        assert len(curve["trades"]) - len(closed) <= 1
        for t in closed:
            assert curve["ts"].index(t["entry_ts"]) < curve["ts"].index(t["exit_ts"])
            assert t["entry_price"] == curve["close"][curve["ts"].index(t["entry_ts"])]
    # buy-and-hold over the out-of-sample bars compounds the closes' move (one entry cost)
    out = next(s for s in page if s["sample"] == "out")
    curve = (await api.get(f"/v1/strategies/{out['id']}/curve")).json()
    moved = curve["close"][-1] / curve["close"][0] - 1
    assert _total_return(curve["buy_and_hold"]) == pytest.approx(moved, rel=1e-9)


async def test_a_discovered_runs_curve_replays_its_folds(api, store, research):
    found = await run_inline(
        store,
        "strategy.discover",
        {"symbols": ["IBM"], "budget": 40, "seed": 5, "folds": 3},
        "key:alice",
    )
    kept = found["symbols"]["IBM"]["discovered"]
    assert kept, "the discovery must keep a strategy for this test to check anything"
    for entry in kept:
        run = (await api.get(f"/v1/strategies/{entry['strategy_id']}")).json()
        curve = (await api.get(f"/v1/strategies/{entry['strategy_id']}/curve")).json()
        assert curve["matches_stored"] is True and curve["folds"]
        assert curve["folds"][0]["start_ts"] == run["start_ts"] == curve["ts"][0]
        assert curve["folds"][-1]["end_ts"] == run["end_ts"] == curve["ts"][-1]
        assert abs(_total_return(curve["equity"]) - run["metrics"]["total_return"]) < 1e-9
        hold = run["benchmark"]["metrics"]["total_return"]
        assert abs(_total_return(curve["buy_and_hold"]) - hold) < 1e-9


async def test_a_curve_whose_bars_changed_says_so(api, store, research):
    run = (await api.get("/v1/strategies?symbol=IBM&sample=out&limit=1")).json()["strategies"][0]
    await store.pool.execute(
        "DELETE FROM price_bar WHERE symbol = 'IBM' AND ts = (SELECT min(ts) FROM price_bar"
        " WHERE symbol = 'IBM' AND ts > $1)",
        datetime.fromisoformat(run["start_ts"]),
    )
    r = await api.get(f"/v1/strategies/{run['id']}/curve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "prices_changed"
    assert "run the job again" in r.json()["error"]["message"]


async def test_a_strategys_runs_pair_its_samples_and_others_runs_stay_hidden(api, research):
    bobs = (await api.get("/v1/strategies?symbol=IBM&limit=1", who="bob")).json()["strategies"]
    r = await api.get(f"/v1/strategies/{bobs[0]['id']}/curve")  # alice asks for bob's
    assert r.status_code == 404 and r.json()["error"]["code"] == "strategy_not_found"
    assert (await api.get(f"/v1/strategies/{bobs[0]['id']}/runs")).status_code == 404
    best = research["optimized"]["symbols"]["IBM"]["best"]
    runs = (await api.get(f"/v1/strategies/{best['strategy_id']}/runs")).json()["runs"]
    assert [r["sample"] for r in runs] == ["in", "out"]
    assert all(r["params"] == best["params"] and r["selected"] for r in runs)
    assert runs[0]["metrics"]["sharpe"] == pytest.approx(best["in_sample"]["sharpe"])


async def test_every_stored_symbol_is_listed_with_its_span(api, store, research):
    r = await api.get("/v1/symbols")
    assert r.status_code == 200, r.text
    listed = {(s["symbol"], s["interval"]): s for s in r.json()["symbols"]}
    stored = await store.pool.fetch(
        "SELECT symbol, interval, min(ts) AS first, max(ts) AS last FROM price_bar"
        " GROUP BY symbol, interval"
    )
    assert (
        set(listed)
        == {(s["symbol"], s["interval"]) for s in stored}
        == {
            ("IBM", "1d"),
            ("MSFT", "1d"),
        }
    )
    for s in stored:
        assert listed[(s["symbol"], s["interval"])]["first"] == s["first"].isoformat().replace(
            "+00:00", "Z"
        )


async def test_an_optimized_runs_grid_is_served_to_whoever_sees_the_run(api, store, research):
    """bob sees the platform's published run, and its grid, though not the job behind it."""
    entry = research["shared"]["symbols"]["MSFT"]
    sid = entry["best"]["strategy_id"]
    r = await api.get(f"/v1/strategies/{sid}/grid", who="bob")
    assert r.status_code == 200, r.text
    grid = r.json()
    assert grid["axes"] == entry["grid"]["axes"] and grid["values"] == entry["grid"]["values"]
    assert grid["best"] == entry["best"]["params"] and grid["metric"] == "sharpe"
    job = (await api.get(f"/v1/strategies/{sid}", who="bob")).json()["job_id"]
    assert (await api.get(f"/v1/jobs/{job}", who="bob")).status_code == 404
    mine = research["optimized"]["symbols"]["IBM"]["best"]["strategy_id"]
    assert (await api.get(f"/v1/strategies/{mine}/grid", who="bob")).status_code == 404


async def test_a_discovered_run_has_no_grid_and_says_why(api, store, research):
    found = await run_inline(
        store,
        "strategy.discover",
        {"symbols": ["IBM"], "budget": 40, "seed": 5, "folds": 3},
        "key:alice",
    )
    sid = found["symbols"]["IBM"]["discovered"][0]["strategy_id"]
    r = await api.get(f"/v1/strategies/{sid}/grid")
    assert (
        r.status_code == 404 and "only an optimization has a grid" in r.json()["error"]["message"]
    )
