"""Bots API: create with validated config, list/filter/paginate, lifecycle moves (and the
illegal ones), edits by state, soft delete, exits, and the ledger views."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.tick import run_tick
from app.services.engine_hooks import TICK_HOOKS
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    HOUR_MS,
    T0,
    Clock,
    at,
    install_replay,
    rows_from,
    uninstall_replay,
    write_candles,
)

BOT = {
    "name": "eth trend",
    "symbol": "ETH/BTC",
    "timeframe": "5m",
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 5, "slow": 20},
    "capital": "1.5",
}


@pytest.fixture(autouse=True)
def replay(app: Any) -> Iterator[None]:
    uninstall_replay()  # the shipped sample data, on the real clock
    yield
    uninstall_replay()


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


def create(client: Any, headers: dict[str, str], **changes: Any) -> Any:
    return client.post("/api/bots", json={**BOT, **changes}, headers=headers)


def error_code(response: Any) -> str:
    return response.get_json()["error"]["code"]


def test_create_returns_the_normalised_bot(client, owner) -> None:  # type: ignore[no-untyped-def]
    r = create(client, owner)
    assert r.status_code == 201, r.get_json()
    bot = r.get_json()
    assert bot["status"] == "created" and bot["mode"] == "paper" and bot["exchange"] == "replay"
    assert bot["strategy_params"] == {"fast": 5, "slow": 20}
    assert bot["sizing"]["mode"] == "kelly" and bot["sizing"]["bootstrap_trades"] == 5
    assert bot["capital"] == "1.5" and bot["next_tick_at"] is None
    got = client.get(f"/api/bots/{bot['id']}", headers=owner).get_json()
    assert got["name"] == "eth trend"


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"strategy": "moon"}, 422, "unknown_strategy"),
        ({"strategy_params": {"fast": 30, "slow": 20}}, 422, "invalid_strategy_params"),
        ({"strategy_params": {"fast": "5"}}, 422, "invalid_strategy_params"),
        ({"strategy_params": {"period": 5}}, 422, "invalid_strategy_params"),
        ({"symbol": "DOGE/BTC"}, 422, "unknown_symbol"),
        ({"timeframe": "7m"}, 422, "unknown_timeframe"),
        ({"timeframe": "1m"}, 422, "unknown_timeframe"),  # replay data is 5m
        ({"exchange": "mtgox"}, 422, "unknown_exchange"),
        ({"capital": "0"}, 422, "validation_error"),
        ({"mode": "live"}, 422, "validation_error"),
        ({"sizing": {"mode": "fixed"}}, 422, "invalid_sizing"),
        ({"sizing": {"mode": "martingale"}}, 422, "invalid_sizing"),
        ({"protections": {"max_drawdown": 3}}, 422, "invalid_protections"),
        ({"leverage": 10}, 422, "validation_error"),
    ],
)
def test_invalid_bots_are_refused_in_the_envelope(client, owner, changes, status, code) -> None:  # type: ignore[no-untyped-def]
    r = create(client, owner, **changes)
    assert r.status_code == status, r.get_json()
    body = r.get_json()["error"]
    assert body["code"] == code and body["message"] and "request_id" in body


def test_list_is_own_paginated_and_filtered(client, owner, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    other = auth_headers(make_user())
    create(client, other, name="not mine")
    ids = [create(client, owner, name=f"b{i}").get_json()["id"] for i in range(3)]
    create(client, owner, name="rsi", strategy="rsi_mean_reversion", strategy_params={},
           symbol="LTC/BTC")  # fmt: skip
    client.post(f"/api/bots/{ids[0]}/start", headers=owner)

    page = client.get("/api/bots?limit=2&offset=1", headers=owner).get_json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 1
    assert len(page["items"]) == 2
    names = {b["name"] for b in client.get("/api/bots", headers=owner).get_json()["items"]}
    assert "not mine" not in names
    running = client.get("/api/bots?status=running", headers=owner).get_json()
    assert [b["id"] for b in running["items"]] == [ids[0]]
    rsi = client.get("/api/bots?strategy=rsi_mean_reversion", headers=owner).get_json()
    assert [b["name"] for b in rsi["items"]] == ["rsi"]
    ltc = client.get("/api/bots?symbol=LTC/BTC", headers=owner).get_json()
    assert ltc["total"] == 1
    assert client.get("/api/bots?status=flying", headers=owner).status_code == 422
    assert client.get("/api/bots?limit=0", headers=owner).status_code == 422


def test_another_users_bot_is_not_found(client, owner, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    bot_id = create(client, owner).get_json()["id"]
    intruder = auth_headers(make_user())
    for method, path in [
        ("get", ""), ("patch", ""), ("delete", ""), ("post", "/start"), ("post", "/exit"),
        ("get", "/orders"), ("get", "/trades"), ("get", "/performance"),
    ]:  # fmt: skip
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        r = getattr(client, method)(f"/api/bots/{bot_id}{path}", headers=intruder, **kwargs)
        assert r.status_code == 404 and error_code(r) == "bot_not_found", (method, path)
    assert client.get("/api/bots", headers=owner).status_code == 200
    assert client.get(f"/api/bots/{bot_id}").status_code == 401


def test_lifecycle_moves_and_illegal_ones(client, owner) -> None:  # type: ignore[no-untyped-def]
    bot_id = create(client, owner).get_json()["id"]

    def act(action: str) -> Any:
        return client.post(f"/api/bots/{bot_id}/{action}", headers=owner)

    r = act("pause")
    assert r.status_code == 409 and error_code(r) == "illegal_transition"
    started = act("start").get_json()
    assert started["status"] == "running" and started["next_tick_at"] is not None
    assert started["paper_started_at"] is not None
    assert act("start").status_code == 409
    r = client.delete(f"/api/bots/{bot_id}", headers=owner)
    assert r.status_code == 409 and error_code(r) == "illegal_transition"
    paused = act("pause").get_json()
    assert paused["status"] == "paused" and paused["next_tick_at"] is None
    assert act("resume").get_json()["status"] == "running"
    assert act("stop").get_json()["status"] == "stopped"
    r = act("resume")  # a stopped bot is started again, not resumed
    assert r.status_code == 409 and error_code(r) == "illegal_transition"
    assert act("start").get_json()["status"] == "running"
    assert act("stop").status_code == 200
    assert client.delete(f"/api/bots/{bot_id}", headers=owner).status_code == 204
    assert client.get(f"/api/bots/{bot_id}", headers=owner).status_code == 404
    with session_scope() as s:  # history is kept
        assert s.get(Bot, bot_id).deleted_at is not None
    assert client.post(f"/api/bots/{bot_id}/fly", headers=owner).status_code == 404


def test_edits_depend_on_the_state(client, owner) -> None:  # type: ignore[no-untyped-def]
    bot_id = create(client, owner).get_json()["id"]
    url = f"/api/bots/{bot_id}"
    r = client.patch(url, json={"symbol": "LTC/BTC", "capital": "2"}, headers=owner)
    assert r.status_code == 200 and r.get_json()["symbol"] == "LTC/BTC"
    assert client.patch(url, json={"symbol": "XYZ/BTC"}, headers=owner).status_code == 422
    client.post(f"{url}/start", headers=owner)
    assert (
        client.patch(url, json={"name": "renamed"}, headers=owner).get_json()["name"] == "renamed"
    )
    r = client.patch(url, json={"strategy_params": {"fast": 3, "slow": 9}}, headers=owner)
    assert r.status_code == 409 and error_code(r) == "bot_not_editable"
    client.post(f"{url}/pause", headers=owner)
    r = client.patch(url, json={"strategy_params": {"fast": 3, "slow": 9}}, headers=owner)
    assert r.status_code == 200 and r.get_json()["strategy_params"] == {"fast": 3, "slow": 9}
    r = client.patch(url, json={"strategy": "macd_trend"}, headers=owner)
    assert r.get_json()["strategy_params"] == {"fast": 12, "slow": 26, "signal": 9}
    r = client.patch(url, json={"strategy_params": {"fast": 40}}, headers=owner)
    assert r.status_code == 422 and error_code(r) == "invalid_strategy_params"
    r = client.patch(url, json={"capital": "5"}, headers=owner)
    assert r.status_code == 409 and error_code(r) == "bot_not_editable"


def test_exit_needs_a_position(client, owner) -> None:  # type: ignore[no-untyped-def]
    bot_id = create(client, owner).get_json()["id"]
    r = client.post(f"/api/bots/{bot_id}/exit", headers=owner)
    assert r.status_code == 409 and error_code(r) == "no_position"


@pytest.fixture
def fixture_market(tmp_path: Path) -> Iterator[Clock]:
    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    clock = Clock(T0)
    install_replay(directory, clock)
    yield clock


def _tick(bot_id: int, clock: Clock, k: int) -> None:
    clock.ms = T0 + (k + 1) * HOUR_MS
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        result = run_tick(s, bot, planned_at=at(clock.ms), now=utcnow(), hooks=TICK_HOOKS)
        bot.last_candle_ts = result.last_candle_ts or bot.last_candle_ts


def test_ledger_views_and_exit(client, owner, fixture_market) -> None:  # type: ignore[no-untyped-def]
    bot_id = create(
        client, owner, symbol="AAA/BBB", timeframe="1h", capital="1000",
        strategy_params={"fast": 2, "slow": 3}, sizing={"mode": "fixed", "stake": 100},
        protections={"max_drawdown": None},
    ).get_json()["id"]  # fmt: skip
    client.post(f"/api/bots/{bot_id}/start", headers=owner)
    for k in range(3, 11):  # one round trip (-15.568608), then a buy waiting for candle 11
        _tick(bot_id, fixture_market, k)

    orders = client.get(f"/api/bots/{bot_id}/orders", headers=owner).get_json()
    assert orders["total"] == 3 and [o["side"] for o in orders["items"]] == ["buy", "sell", "buy"]
    assert orders["items"][0]["state"] == "open" and orders["items"][1]["average_price"] == "11"
    trades = client.get(f"/api/bots/{bot_id}/trades?limit=1", headers=owner).get_json()
    assert trades["total"] == 2 and trades["items"][0]["closed_trade_pnl"] == "-15.568608"
    assert trades["items"][0]["exit_reason"] == "exit_signal"
    (position,) = client.get(f"/api/bots/{bot_id}/positions", headers=owner).get_json()["items"]
    assert position["amount"] == "0" and position["cash"] == "984.431392"
    assert position["open_orders"] == 1 and position["realised_pnl"] == "-15.384"
    equity = client.get(f"/api/bots/{bot_id}/equity", headers=owner).get_json()["items"]
    assert equity[0]["equity"] == "1000" and equity[-1]["equity"] == "984.431392"
    perf = client.get(f"/api/bots/{bot_id}/performance", headers=owner).get_json()
    m = perf["metrics"]
    assert m["n_trades"] == 1 and m["losses"] == 1 and m["win_rate"] == 0.0
    assert m["total_return"] == pytest.approx(-0.015568608)
    assert perf["equity"]["points"] == 8  # hourly, forward-filled from 4:00 to 11:00
    # numbers a person can read: plain decimal text, ISO 8601 UTC, no "inf", reasons for nulls
    assert perf["equity"]["capital"] == "1000" and m["gross_loss"] == "15.568608"
    assert m["gross_profit"] == "0" and m["profit_factor"] == 0.0  # a loss, no win
    assert m["sharpe"] is None and m["unavailable"]["sharpe"].startswith("needs at least 14")
    assert m["start_ts"].endswith("Z") and m["max_drawdown_trough_ts"].endswith("Z")
    report = client.get(f"/api/bots/{bot_id}/report", headers=owner).get_json()
    # the backtest's report over the bot's own fills: the same first trade as the backtest
    (trip,) = report["round_trips"]
    assert (trip["entry_price"], trip["exit_price"], trip["amount"]) == ("13", "11", "7.692")
    assert trip["profit_abs"] == "-15.568608" and trip["exit_reason"] == "exit_signal"
    assert trip["duration_s"] == 3 * 3600
    totals = report["totals"]
    assert (totals["trades"], totals["losses"], totals["profit_total_abs"]) == (1, 1, "-15.568608")
    assert totals["max_drawdown"]["recovered"] is False and totals["profit_factor"] == 0.0
    assert [r["key"] for r in report["tables"]["exit_reason"]] == ["exit_signal"]
    assert position["balances"]["BBB"]["locked"] != "0E-18"
    for row in [*orders["items"], *trades["items"], position, *equity]:
        for key, value in row.items():
            if isinstance(value, str) and value[:1].isdigit() and "T" not in value:
                assert "E" not in value and not value.endswith(".0"), (key, value)
    assert all(o["created_at"].endswith("Z") for o in orders["items"])
    assert all(e["ts"].endswith("Z") for e in equity)
    bot = client.get(f"/api/bots/{bot_id}", headers=owner).get_json()
    assert bot["capital"] == "1000" and bot["maker_fee"] == "0.001" and bot["slippage_bps"] == "0"

    _tick(bot_id, fixture_market, 11)  # the buy fills at open[11]: long 7.142
    r = client.post(f"/api/bots/{bot_id}/exit", headers=owner)
    assert r.status_code == 202 and r.get_json()["exit_requested_at"] is not None
    client.post(f"/api/bots/{bot_id}/stop", headers=owner)  # stopped, but still exiting
    with session_scope() as s:
        assert s.get(Bot, bot_id).next_tick_at is not None
    _tick(bot_id, fixture_market, 12)  # the tick sells
    _tick(bot_id, fixture_market, 13)  # filled at open[13] = 12
    sells = [o for o in client.get(f"/api/bots/{bot_id}/orders", headers=owner).get_json()["items"]
             if o["side"] == "sell"]  # fmt: skip
    assert sells[0]["state"] == "filled" and sells[0]["reason"] == "manual"
    assert sells[0]["average_price"] == "12" and sells[0]["amount"] == "7.142"


def test_bootstrap_trades_default_comes_from_the_setting(client, owner, settings) -> None:  # type: ignore[no-untyped-def]
    from config import use_settings

    use_settings(settings.model_copy(update={"bootstrap_trades": 3}))
    try:
        assert create(client, owner).get_json()["sizing"]["bootstrap_trades"] == 3
        explicit = create(client, owner, sizing={"bootstrap_trades": 8}).get_json()
    finally:
        use_settings(settings)
    assert explicit["sizing"]["bootstrap_trades"] == 8


def test_decimals_come_back_as_plain_text(client, owner) -> None:  # type: ignore[no-untyped-def]
    bot = create(client, owner, capital="1.000000000000000000", taker_fee="1E-3",
                 sizing={"mode": "fixed", "stake": "0.50"}).get_json()  # fmt: skip
    assert bot["capital"] == "1" and bot["taker_fee"] == "0.001"
    assert bot["sizing"]["stake"] == "0.5" and bot["sizing"]["kelly_cap"] == "0.25"
    assert bot["created_at"].endswith("Z")


def test_a_fixed_stake_above_the_capital_is_422_at_create_and_update(client, owner) -> None:  # type: ignore[no-untyped-def]
    r = create(client, owner, capital="1.5", sizing={"mode": "fixed", "stake": "2"})
    assert r.status_code == 422, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "stake_above_capital"
    assert err["details"][0]["loc"] == ["body", "sizing", "stake"]
    assert "2" in err["message"] and "1.5" in err["message"]
    assert client.get("/api/bots", headers=owner).get_json()["total"] == 0

    bot = create(client, owner, capital="1.5", sizing={"mode": "fixed", "stake": "1.5"}).get_json()
    url = f"/api/bots/{bot['id']}"
    for change in ({"sizing": {"mode": "fixed", "stake": "1.6"}}, {"capital": "1"}):
        r = client.patch(url, json=change, headers=owner)
        assert r.status_code == 422, r.get_json()
        assert r.get_json()["error"]["code"] == "stake_above_capital"
    unchanged = client.get(url, headers=owner).get_json()
    assert unchanged["capital"] == "1.5" and unchanged["sizing"]["stake"] in ("1.5", 1.5)
    both = {"capital": "3", "sizing": {"mode": "fixed", "stake": "2"}}
    assert client.patch(url, json=both, headers=owner).status_code == 200
