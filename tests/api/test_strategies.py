"""GET /api/strategies: every strategy with the schema its parameters are checked against,
and the defaults a bot gets when it gives none."""

from __future__ import annotations

from typing import Any


def test_lists_at_least_four_strategies_with_schemas(client: Any, make_user: Any,
                                                      auth_headers: Any) -> None:  # fmt: skip
    headers = auth_headers(make_user())
    r = client.get("/api/strategies", headers=headers)
    assert r.status_code == 200
    items = r.get_json()["items"]
    names = [s["name"] for s in items]
    assert len(names) >= 4 and names == sorted(names)
    assert {"sma_crossover", "rsi_mean_reversion", "bollinger_breakout", "macd_trend"} <= set(names)
    sma = next(s for s in items if s["name"] == "sma_crossover")
    assert sma["default_params"] == {"fast": 10, "slow": 30}
    props = sma["params_schema"]["properties"]
    assert props["fast"]["type"] == "integer" and props["fast"]["minimum"] == 2
    assert sma["params_schema"]["additionalProperties"] is False
    assert all(s["description"] for s in items)


def test_one_strategy_and_an_unknown_one(client: Any, make_user: Any, auth_headers: Any) -> None:
    headers = auth_headers(make_user())
    r = client.get("/api/strategies/macd_trend", headers=headers)
    assert r.status_code == 200 and r.get_json()["default_params"]["signal"] == 9
    r = client.get("/api/strategies/moon", headers=headers)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "unknown_strategy"
    assert client.get("/api/strategies").status_code == 401


def test_schema_defaults_are_what_a_bot_gets(client: Any, make_user: Any,
                                              auth_headers: Any) -> None:  # fmt: skip
    headers = auth_headers(make_user())
    for strategy in client.get("/api/strategies", headers=headers).get_json()["items"]:
        r = client.post(
            "/api/bots",
            json={"name": strategy["name"], "symbol": "ETH/BTC", "timeframe": "5m",
                  "strategy": strategy["name"], "capital": 1},
            headers=headers,
        )  # fmt: skip
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["strategy_params"] == strategy["default_params"]
