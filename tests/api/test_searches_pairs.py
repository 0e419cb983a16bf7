"""A parameter search over several pairs over HTTP: `symbols` checked before anything is
queued, each trial the several-pair backtest of its parameters, and a bot made from the
search on the pair the user picks."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from app.jobs.job_runner import run_once
from app.services import backtests
from tests.api import test_backtests_pairs as shared
from tests.api import test_searches as single

pairs_data = shared.pairs_data
owner = shared.owner

SEARCH = {k: v for k, v in single.SEARCH.items() if k != "symbol"} | {
    "symbols": ["AAA/BBB", "SSS/BBB"], "max_open_trades": 1,
}


def _direct_return(params: dict[str, Any]) -> float:
    """The several-pair backtest of `params`, outside the search."""
    spec = backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": params, "symbol": "AAA/BBB",
        "symbols": SEARCH["symbols"], "max_open_trades": 1, "timeframe": "1h",
        "capital": "1000", "sizing": {"mode": "fixed", "stake": "100"},
    })  # fmt: skip
    spec = replace(spec, sizing={"mode": "fixed", "stake": Decimal(100)})
    return backtests.execute_pairs(spec, backtests.load_pairs(spec)).metrics.total_return


def _searched(client: Any, owner: dict[str, str]) -> dict[str, Any]:
    r = client.post("/api/searches", json=SEARCH, headers=owner)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["payload"]["backtest"]["symbols"] == ["AAA/BBB", "SSS/BBB"]
    run_once()
    done = client.get(f"/api/searches/{r.get_json()['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    return done


def test_each_trial_is_the_several_pair_backtest(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    done = _searched(client, owner)
    result = done["result"]
    assert result["summary"]["symbols"] == ["AAA/BBB", "SSS/BBB"]
    assert result["summary"]["max_open_trades"] == 1
    assert result["summary"]["candles"] == 15  # the shifted pair adds no time of its own
    scored = [t for t in result["trials"] if t["value"] is not None]
    assert len(result["trials"]) == 8 and scored
    for t in scored:
        assert t["value"] == pytest.approx(_direct_return(t["params"]), abs=1e-15)
    assert result["best"]["value"] == max(t["value"] for t in scored)


def test_a_bot_from_the_search_trades_the_pair_picked(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    done = _searched(client, owner)
    url = f"/api/searches/{done['id']}/bot"
    first = client.post(url, json={}, headers=owner)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["symbol"] == "AAA/BBB"  # by default the first pair
    picked = client.post(url, json={"symbol": "SSS/BBB", "name": "s"}, headers=owner)
    assert picked.status_code == 201, picked.get_json()
    bot = picked.get_json()
    assert bot["symbol"] == "SSS/BBB"
    assert bot["strategy_params"] == done["result"]["best"]["params"]
    other = client.post(url, json={"symbol": "CCC/BBB"}, headers=owner)
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "symbol_not_searched"
    assert len(client.get("/api/bots", headers=owner).get_json()["items"]) == 2


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"symbols": ["AAA/BBB", "AAA/EUR"]}, "mixed_quote_currencies"),
        ({"symbols": ["AAA/BBB", "ZZZ/BBB"]}, "unknown_symbol"),
        ({"symbols": ["AAA/BBB", "AAA/BBB"]}, "validation_error"),
        ({"symbol": "AAA/BBB"}, "validation_error"),  # symbol and symbols both
        ({"max_open_trades": 0}, "validation_error"),
    ],
)
def test_bad_pairs_answer_422_before_anything_runs(client, owner, pairs_data, changes,
                                                   code) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    r = client.post("/api/searches", json={**SEARCH, **changes}, headers=owner)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert client.get("/api/searches", headers=owner).get_json()["total"] == 0
