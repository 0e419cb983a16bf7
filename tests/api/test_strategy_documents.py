"""Users' strategy documents over HTTP: saved as immutable versions, checked without saving,
run by bots and backtests at the version they name; every invalid document answers 422 with
the JSON path of what is wrong (never a 500); another user's document does not exist."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.jobs.job_runner import run_once
from tests.api.test_backtests import REQUEST
from tests.engine.helpers import FIXTURE_CLOSE, FIXTURE_OPEN, rows_from, write_candles
from tests.engine.test_tick import EXIT_DOC

DOC = {
    "name": "rsi dip",
    "parameters": {"period": {"type": "int", "default": 14, "min": 2, "max": 50}},
    "indicators": {"rsi": {"ta": "RSI", "params": {"timeperiod": {"param": "period"}}}},
    "entry": {"op": "crosses_above", "args": [{"ref": "rsi"}, 30]},
    "exit": {"op": "crosses_above", "args": [{"ref": "rsi"}, 70]},
    "exits": {"stoploss": -0.05, "minimal_roi": {"0": 0.04}},
}


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


def _create(client: Any, headers: dict[str, str], doc: dict[str, Any] = DOC) -> dict[str, Any]:
    r = client.post("/api/strategies", json={"document": doc}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_save_read_version_and_delete(client, owner) -> None:  # type: ignore[no-untyped-def]
    first = _create(client, owner)
    assert (first["version"], first["latest_version"], first["name"]) == (1, 1, "rsi dip")
    changed = copy.deepcopy(DOC)
    changed["parameters"]["period"]["default"] = 7
    r = client.put(f"/api/strategies/{first['id']}", json={"document": changed}, headers=owner)
    assert r.status_code == 200 and r.get_json()["version"] == 2
    old = client.get(f"/api/strategies/{first['id']}/versions/1", headers=owner).get_json()
    assert old["document"]["parameters"]["period"]["default"] == 14  # versions never change
    latest = client.get(f"/api/strategies/{first['id']}", headers=owner).get_json()
    assert latest["version"] == 2 and latest["document"]["parameters"]["period"]["default"] == 7
    listed = client.get("/api/strategies/documents", headers=owner).get_json()
    assert [d["id"] for d in listed["items"]] == [first["id"]] and listed["total"] == 1
    missing = client.get(f"/api/strategies/{first['id']}/versions/3", headers=owner)
    assert missing.status_code == 404
    assert client.delete(f"/api/strategies/{first['id']}", headers=owner).status_code == 204
    assert client.get(f"/api/strategies/{first['id']}", headers=owner).status_code == 404
    assert client.get("/api/strategies/documents", headers=owner).get_json()["total"] == 0


def test_yaml_text_is_accepted(client, owner) -> None:  # type: ignore[no-untyped-def]
    text = "name: y\nentry: {op: gt, args: [{series: close}, {ta: SMA, params: {timeperiod: 5}}]}\n"
    r = client.post("/api/strategies", json={"text": text}, headers=owner)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["document"]["entry"]["op"] == "gt"


def test_validate_answers_warm_up_parameters_and_series(client, owner) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/strategies/validate", json={"document": DOC, "timeframe": "5m"},
                    headers=owner)  # fmt: skip
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["warmup"] == 15 and out["lookback"] > out["warmup"]
    assert out["default_params"] == {"period": 14}
    assert out["series"] == [{"name": "rsi", "warmup": 14}]
    assert out["exits"]["stoploss"] == -0.05 and out["exits"]["minimal_roi"] == {"0": 0.04}
    assert client.get("/api/strategies/documents", headers=owner).get_json()["total"] == 0


def test_an_invalid_document_names_the_path(client, owner) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(DOC)
    bad["indicators"]["rsi"]["ta"] = "NOT_A_FUNCTION"
    for method, url in (("post", "/api/strategies"), ("post", "/api/strategies/validate")):
        r = getattr(client, method)(url, json={"document": bad}, headers=owner)
        assert r.status_code == 422
        error = r.get_json()["error"]
        assert error["code"] == "invalid_strategy_document"
        assert "$.indicators.rsi.ta" in error["message"]
        assert error["details"][0]["path"] == "$.indicators.rsi.ta"
    functions = client.get("/api/strategies/functions", headers=owner).get_json()["items"]
    rsi = next(f for f in functions if f["name"] == "RSI")
    assert rsi["params"] == [{"name": "timeperiod", "type": "int", "default": 14}]
    assert "OBV" not in {f["name"] for f in functions}


_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no Infinity: that is a 400
    | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.sampled_from(["op", "args", "ta", "ref", "param", "n", "series",
                                       "informative", "expr", "params", "x"]), kids, max_size=3),
    max_leaves=10,
)  # fmt: skip


SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(where=st.sampled_from([("entry",), ("entry", "args", 0), ("indicators", "rsi"),
                              ("indicators", "rsi", "params"), ("exits",), ("parameters",),
                              ("exit", "args", 1), ()]),  # fmt: skip
       junk=_JUNK)
def test_mangled_documents_are_refused_with_a_path(client, owner, where, junk) -> None:  # type: ignore[no-untyped-def]
    doc: Any = copy.deepcopy(DOC)
    if where:
        target = doc
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = junk
    else:
        doc = junk
    r = client.post("/api/strategies/validate", json={"document": doc}, headers=owner)
    assert r.status_code in (200, 422), r.get_json()
    if r.status_code == 422:
        details = r.get_json()["error"]["details"]
        assert details and all("loc" in d for d in details)


@pytest.fixture
def fixture_data(app: Any, settings: Any, tmp_path: Path) -> Iterator[Path]:
    from config import use_settings

    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    dirs = {"candles_dir": str(directory), "candles_import_dir": str(tmp_path / "none")}
    use_settings(settings.model_copy(update=dirs))
    yield directory
    use_settings(settings)


def test_a_bot_runs_the_version_it_was_given(client, owner, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    doc = _create(client, owner)
    bot = {"name": "b", "symbol": "ETH/BTC", "timeframe": "5m", "capital": 1,
           "strategy_document_id": doc["id"], "strategy_params": {"period": 9}}  # fmt: skip
    r = client.post("/api/bots", json=bot, headers=owner)
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    assert (made["strategy_document_id"], made["strategy_version"]) == (doc["id"], 1)
    assert made["strategy"] == "rsi dip" and made["strategy_params"] == {"period": 9}
    client.put(f"/api/strategies/{doc['id']}", json={"document": DOC}, headers=owner)
    again = client.get(f"/api/bots/{made['id']}", headers=owner).get_json()
    assert again["strategy_version"] == 1  # a new version changes no bot by itself
    r = client.patch(f"/api/bots/{made['id']}", json={"strategy_version": 2}, headers=owner)
    assert r.status_code == 200 and r.get_json()["strategy_version"] == 2
    assert r.get_json()["strategy_params"] == {"period": 9}
    r = client.patch(f"/api/bots/{made['id']}", json={"strategy_params": {"period": 99}},
                     headers=owner)  # fmt: skip
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid_strategy_params"
    r = client.patch(f"/api/bots/{made['id']}", json={"strategy": "sma_crossover"}, headers=owner)
    assert r.status_code == 200 and r.get_json()["strategy_document_id"] is None
    # another user can neither run nor learn of the document: the answer of a missing one
    other = auth_headers(make_user(email="other@example.com"))
    theirs = client.post("/api/bots", json=bot, headers=other)
    missing = client.post("/api/bots", json={**bot, "strategy_document_id": 2_000_000_000},
                          headers=other)  # fmt: skip
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json()["error"]["code"] == missing.get_json()["error"]["code"]


def test_a_backtest_records_and_runs_the_document_version(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    doc = _create(client, owner, EXIT_DOC)
    request = {k: v for k, v in REQUEST.items() if k not in ("strategy", "strategy_params")}
    r = client.post("/api/backtests", json={**request, "strategy_document_id": doc["id"]},
                    headers=owner)  # fmt: skip
    assert r.status_code == 202, r.get_json()
    payload = r.get_json()["payload"]
    assert (payload["strategy_document_id"], payload["strategy_version"]) == (doc["id"], 1)
    run_once()
    done = client.get(f"/api/backtests/{r.get_json()['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    trades = done["result"]["trades"]
    assert [(t["exit_reason"], t["exit_price"]) for t in trades] == [
        ("stop_loss", "11.1"), ("roi", "18.3")]  # fmt: skip
