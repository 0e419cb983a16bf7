"""The analysis API: submitting jobs (validation, idempotency, dedupe), reading and cancelling
them, running them to stored per-ticker results, the watchlist and the patterns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.domain.analysis import analyze
from app.domain.times import iso_ms
from app.jobs import job_runner
from app.market.registry import get_market_source
from app.services.analysis import store_analysis_results
from app.store.db import session_scope
from app.store.job_contract import JobInfo
from app.store.models import Job
from app.store.models.analysis import AnalysisResult

ROOT = Path(__file__).resolve().parents[2]
RUNNER = job_runner.RunnerConfig(
    lease_seconds=60, heartbeat_seconds=30, stale_seconds=120, backoff_seconds=0
)


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user()


@pytest.fixture
def headers(user: Any, auth_headers: Callable[[Any], dict[str, str]]) -> dict[str, str]:
    return auth_headers(user)


def _analyze(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    data = {"tickers": ["ETH/BTC"], "capital": 1000, **body}
    return client.post("/api/analyze", json=data, headers=headers)


def _run_jobs() -> list[tuple[int, str | None]]:
    return job_runner.run_once(owner="test-worker", config=RUNNER)


def test_analyze_answers_202_with_a_queued_job(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    resp = _analyze(client, headers, tickers=["eth-btc", "LTC/BTC", "ETH/BTC"], capital="2500.50")
    assert resp.status_code == 202, resp.json
    job = resp.json
    assert resp.headers["Location"] == f"/api/jobs/{job['id']}"
    assert (job["kind"], job["state"], job["attempts"], job["progress"]) == (
        "analysis",
        "queued",
        0,
        0.0,
    )
    # tickers normalised and de-duplicated in order; capital kept exactly
    assert job["payload"]["tickers"] == ["ETH/BTC", "LTC/BTC"]
    assert job["payload"]["capital"] == "2500.5"
    got = client.get(f"/api/jobs/{job['id']}", headers=headers).json
    assert got["id"] == job["id"] and got["state"] == "queued"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"tickers": []}, "tickers"),
        ({"tickers": [f"T{i}/BTC" for i in range(51)]}, "tickers"),
        ({"tickers": ["ETH BTC"]}, "tickers"),
        ({"tickers": ["ETH"]}, "tickers"),
        ({"capital": 0}, "capital"),
        ({"capital": -5}, "capital"),
        ({"capital": "lots"}, "capital"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"max_per_ticker": 1.5}, "max_per_ticker"),
        ({"pattern": "no_such_pattern"}, "pattern"),
        ({"pattern": "trend_momentum", "pattern_params": {"fast": "fifty"}}, "pattern_params"),
        ({"pattern": "trend_momentum", "pattern_params": {"nope": 1}}, "pattern_params"),
        ({"pattern_params": {"fast": 5}}, "pattern_params"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_requests_are_422_and_create_nothing(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any], where: str
) -> None:
    resp = _analyze(client, headers, **body)
    assert resp.status_code == 422, resp.json
    error = resp.json["error"]
    assert where in error["message"] or any(where in d["loc"] for d in error["details"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_single_quoted_json_gets_400_with_a_hint(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    resp = client.post(
        "/api/analyze",
        data="{'tickers': ['ETH/BTC'], 'capital': 1000}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    error = resp.json["error"]
    assert error["code"] == "malformed_json"
    hint = error["details"][0]["msg"]
    assert "line 1, column 2" in hint and "double quotes" in hint


def test_requires_authentication(client: FlaskClient) -> None:
    assert (
        client.post("/api/analyze", json={"tickers": ["ETH/BTC"], "capital": 1}).status_code == 401
    )
    assert client.get("/api/jobs").status_code == 401


def test_idempotency_key(client: FlaskClient, headers: dict[str, str]) -> None:
    keyed = {**headers, "Idempotency-Key": "order-42"}
    first = _analyze(client, keyed)
    again = _analyze(client, keyed, capital="1000.00")  # the same request, written differently
    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    reused = _analyze(client, keyed, capital=999)
    assert reused.status_code == 409
    assert reused.json["error"]["code"] == "idempotency_key_reused"
    bad = _analyze(client, {**headers, "Idempotency-Key": "x" * 201})
    assert bad.status_code == 422
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_an_identical_active_job_is_returned_instead_of_a_duplicate(
    client: FlaskClient,
    headers: dict[str, str],
    make_user: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    first = _analyze(client, headers).json
    assert _analyze(client, headers).json["id"] == first["id"]
    other_user = _analyze(client, auth_headers(make_user())).json
    assert other_user["id"] != first["id"]
    different = _analyze(client, headers, capital=5).json
    assert different["id"] != first["id"]
    _run_jobs()  # once finished, the same request is new work
    later = _analyze(client, headers).json
    assert later["id"] not in (first["id"], different["id"])


def test_other_users_jobs_are_not_found(
    client: FlaskClient,
    headers: dict[str, str],
    make_user: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    job_id = _analyze(client, headers).json["id"]
    stranger = auth_headers(make_user())
    assert client.get(f"/api/jobs/{job_id}", headers=stranger).status_code == 404
    assert client.delete(f"/api/jobs/{job_id}", headers=stranger).status_code == 404
    assert client.get("/api/jobs", headers=stranger).json["total"] == 0
    assert client.get(f"/api/jobs/{job_id}", headers=headers).status_code == 200


def test_cancel_a_queued_job(client: FlaskClient, headers: dict[str, str]) -> None:
    job_id = _analyze(client, headers).json["id"]
    resp = client.delete(f"/api/jobs/{job_id}", headers=headers)
    assert resp.status_code == 200
    assert resp.json["state"] == "cancelled" and resp.json["finished_at"]
    again = client.delete(f"/api/jobs/{job_id}", headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "job_finished"
    assert _run_jobs() == []  # nothing left to run
    assert client.get("/api/jobs/999999", headers=headers).status_code == 404


def test_cancel_a_running_job_stops_it_before_the_next_ticker(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    from app.store import queue
    from app.store.base import utcnow

    job_id = _analyze(client, headers, tickers=["ETH/BTC", "LTC/BTC"]).json["id"]
    with session_scope() as s:  # a worker takes it ...
        assert queue.claim_jobs(s, owner="w1", now=utcnow(), lease_seconds=60) == [job_id]
    resp = client.delete(f"/api/jobs/{job_id}", headers=headers)  # ... and the user cancels
    assert resp.status_code == 202
    assert resp.json["state"] == "running" and resp.json["cancel_requested"] is True
    assert job_runner.execute_job(job_id, "w1", RUNNER) == "cancelled"
    job = client.get(f"/api/jobs/{job_id}", headers=headers).json
    assert job["state"] == "cancelled" and job["result"] is None
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AnalysisResult)) == 0


def _expected(ticker: str, timeframe: str = "1h") -> Any:
    candles = get_market_source().candles(ticker, timeframe, limit=500)
    return analyze(ticker, candles)


def test_a_job_runs_to_stored_per_ticker_results(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    tickers = ["ETH/BTC", "LTC-BTC", "XMR/BTC", "NOPE/BTC"]
    job_id = _analyze(client, headers, tickers=tickers, capital=1000).json["id"]
    before = {t: _expected(t) for t in ("ETH/BTC", "LTC/BTC", "XMR/BTC")}
    assert _run_jobs() == [(job_id, "succeeded")]
    after = {t: _expected(t) for t in before}

    job = client.get(f"/api/jobs/{job_id}", headers=headers).json
    assert (job["state"], job["progress"], job["attempts"], job["error"]) == (
        "succeeded",
        1.0,
        1,
        None,
    )
    assert job["started_at"] and job["finished_at"] and job["duration_seconds"] >= 0
    result = job["result"]
    assert [t["ticker"] for t in result["tickers"]] == ["ETH/BTC", "LTC/BTC", "XMR/BTC", "NOPE/BTC"]
    unknown = result["tickers"][3]
    assert unknown["error"]["code"] == "unknown_symbol"
    assert (result["analysed"], result["errors"]) == (3, 1)
    allocated = sum(Decimal(t.get("allocation", "0")) for t in result["tickers"])
    assert allocated == Decimal(result["allocated"]) <= Decimal("1000")
    assert Decimal(result["cash"]) == Decimal("1000") - allocated
    for row in result["tickers"][:3]:  # each capped at max_per_ticker (25 %)
        assert Decimal(row["allocation"]) <= Decimal("250")
        assert (Decimal(row["allocation"]) > 0) == (row["signal"] == "buy")

    page = client.get(f"/api/analysis-results?job_id={job_id}", headers=headers).json
    assert page["total"] == 4
    rows = {r["ticker"]: r for r in page["items"]}
    assert rows["NOPE/BTC"]["signal"] is None and "unknown_symbol" in rows["NOPE/BTC"]["error"]
    for ticker in before:
        stored = rows[ticker]
        # the stored output is the domain analysis of the candles the job saw
        expected = before[ticker]
        if stored["data"]["indicators"]["ts"] != iso_ms(expected.ts):
            expected = after[ticker]
        indicators = stored["data"]["indicators"]
        assert indicators["ts"] == iso_ms(expected.ts)  # ISO 8601 UTC, not epoch ms
        for name, value in {**expected.to_dict(), "ts": iso_ms(expected.ts)}.items():
            if isinstance(value, float):
                assert indicators[name] == pytest.approx(value, rel=1e-12), name
            else:
                assert indicators[name] == value, name
        assert stored["signal"] == expected.signal
        assert stored["score"] == pytest.approx(expected.score, abs=1e-6)
        assert stored["data"]["reasons"] == list(expected.reasons)
        assert stored["error"] is None
        close_ms = expected.ts + 3600 * 1000
        assert datetime.fromisoformat(stored["as_of"]) == datetime.fromtimestamp(
            close_ms / 1000, UTC
        )


def test_results_filter_and_paginate(client: FlaskClient, headers: dict[str, str]) -> None:
    _analyze(client, headers, tickers=["ETH/BTC", "LTC/BTC"])
    _analyze(client, headers, tickers=["ETH/BTC"], capital=5)
    assert len(_run_jobs()) == 2
    all_rows = client.get("/api/analysis-results", headers=headers).json
    assert all_rows["total"] == 3
    eth = client.get("/api/analysis-results?ticker=eth-btc", headers=headers).json
    assert eth["total"] == 2 and {r["ticker"] for r in eth["items"]} == {"ETH/BTC"}
    today = datetime.now(UTC).date().isoformat()
    assert client.get(f"/api/analysis-results?date={today}", headers=headers).json["total"] == 3
    assert client.get("/api/analysis-results?date=2001-01-01", headers=headers).json["total"] == 0
    first = client.get("/api/analysis-results?limit=2", headers=headers).json
    second = client.get("/api/analysis-results?limit=2&offset=2", headers=headers).json
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3
    assert client.get("/api/analysis-results?date=yesterday", headers=headers).status_code == 422
    jobs = client.get("/api/jobs?state=succeeded", headers=headers).json
    assert jobs["total"] == 2 and all(j["state"] == "succeeded" for j in jobs["items"])
    assert client.get("/api/jobs?state=paused", headers=headers).status_code == 422


def test_bulk_is_one_job_with_per_ticker_results(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    tickers = ["ETH/BTC", "LTC/BTC", "XMR/BTC"] + [f"X{i}/BTC" for i in range(57)]
    resp = client.post(
        "/api/analyze/bulk", json={"tickers": tickers, "capital": 100}, headers=headers
    )
    assert resp.status_code == 202
    assert len(resp.json["payload"]["tickers"]) == 60
    assert _run_jobs() == [(resp.json["id"], "succeeded")]
    result = client.get(f"/api/jobs/{resp.json['id']}", headers=headers).json["result"]
    assert (result["analysed"], result["errors"]) == (3, 57)
    too_many = [f"T{i}/BTC" for i in range(501)]
    resp = client.post(
        "/api/analyze/bulk", json={"tickers": too_many, "capital": 100}, headers=headers
    )
    assert resp.status_code == 422


def test_watchlist(client: FlaskClient, headers: dict[str, str]) -> None:
    empty = client.post("/api/watchlist/analyze", json={"capital": 100}, headers=headers)
    assert empty.status_code == 422 and empty.json["error"]["code"] == "empty_watchlist"
    added = client.post("/api/watchlist", json={"ticker": "eth-btc"}, headers=headers)
    assert added.status_code == 201 and added.json["ticker"] == "ETH/BTC"
    assert (
        client.post("/api/watchlist", json={"ticker": "ETH/BTC"}, headers=headers).status_code
        == 200
    )
    assert (
        client.post("/api/watchlist", json={"ticker": "LTC/BTC"}, headers=headers).status_code
        == 201
    )
    unknown = client.post("/api/watchlist", json={"ticker": "NOPE/BTC"}, headers=headers)
    assert unknown.status_code == 422 and unknown.json["error"]["code"] == "unknown_ticker"
    assert client.post("/api/watchlist", json={"ticker": "!!"}, headers=headers).status_code == 422
    listed = client.get("/api/watchlist", headers=headers).json["items"]
    assert [i["ticker"] for i in listed] == ["ETH/BTC", "LTC/BTC"]

    job = client.post("/api/watchlist/analyze", json={"capital": 100}, headers=headers)
    assert job.status_code == 202
    assert job.json["payload"]["tickers"] == ["ETH/BTC", "LTC/BTC"]

    assert client.delete("/api/watchlist/LTC-BTC", headers=headers).status_code == 204
    assert client.delete("/api/watchlist/LTC/BTC", headers=headers).status_code == 404
    assert client.delete("/api/watchlist/ETH/BTC", headers=headers).status_code == 204
    assert client.get("/api/watchlist", headers=headers).json["items"] == []


def test_patterns_are_listed_with_parameters(client: FlaskClient, headers: dict[str, str]) -> None:
    body = client.get("/api/patterns", headers=headers).json
    by_name = {p["name"]: p for p in body["patterns"]}
    assert {"trend_momentum", "mean_reversion", "blended_score"} <= set(by_name)
    params = by_name["trend_momentum"]["parameters"]
    assert params["overbought"]["type"] == "number" and params["overbought"]["default"] == 70
    assert params["fast"]["required"] is False
    assert [s["id"] for s in by_name["trend_momentum"]["steps"]] == [
        "trend",
        "momentum",
        "decision",
    ]
    assert body["problems"] == []


def test_a_pattern_job_decides_by_the_pattern(client: FlaskClient, headers: dict[str, str]) -> None:
    from app.patterns import get_pattern_registry

    resp = _analyze(
        client,
        headers,
        tickers=["ETH/BTC", "LTC/BTC"],
        pattern="trend_momentum",
        pattern_params={"overbought": 101 - 1},
    )
    assert resp.status_code == 202, resp.json
    assert resp.json["payload"]["pattern_params"] == {"fast": 50, "slow": 200, "overbought": 100.0}
    assert _run_jobs() == [(resp.json["id"], "succeeded")]
    job = client.get(f"/api/jobs/{resp.json['id']}", headers=headers).json
    assert job["result"]["pattern"] == "trend_momentum"
    pattern = get_pattern_registry().get("trend_momentum")
    assert job["result"]["pattern_version"] == pattern.digest[:12]
    rows = client.get(f"/api/analysis-results?job_id={resp.json['id']}", headers=headers).json
    for row in rows["items"]:
        steps = row["data"]["steps"]
        assert set(steps) == {"trend", "momentum", "decision"}
        assert row["signal"] == steps["decision"]["signal"]
        assert row["score"] == pytest.approx(steps["decision"]["score"])
        assert row["pattern"] == "trend_momentum"
        assert row["data"]["reasons"][-1].startswith("decision: ")


def test_pattern_problems_are_listed_and_edits_apply_without_restart(
    client: FlaskClient, headers: dict[str, str], settings: Any, tmp_path: Any
) -> None:
    from config import use_settings

    source = (ROOT / "patterns" / "mean_reversion.yaml").read_text()
    (tmp_path / "mean_reversion.yaml").write_text(source)
    use_settings(settings.model_copy(update={"patterns_dir": str(tmp_path)}))
    try:
        listed = client.get("/api/patterns", headers=headers).json
        assert [p["name"] for p in listed["patterns"]] == ["mean_reversion"]
        broken = source.replace("with: {atr_period: 14, window: 100}", "with: {atr: 3}")
        (tmp_path / "mean_reversion.yaml").write_text(broken + "\n")
        listed = client.get("/api/patterns", headers=headers).json
        assert [p["name"] for p in listed["patterns"]] == ["mean_reversion"]  # last good
        [problem] = listed["problems"]
        assert problem["file"] == "mean_reversion.yaml"
        assert problem["line"] == broken.splitlines().index("    with: {atr: 3}") + 1
        assert "takes no argument 'atr'" in problem["reason"]
        resp = _analyze(client, headers, pattern="mean_reversion")
        assert resp.status_code == 202  # the last good version still serves requests
    finally:
        use_settings(settings)


LONG_TICKER = "A" * 20 + "/" + "B" * 20  # 41 characters: the column holds 40


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/analyze", {"tickers": ["ETH/BTC", LONG_TICKER], "capital": 1000}),
        ("/api/analyze/bulk", {"tickers": ["ETH/BTC", LONG_TICKER], "capital": 1000}),
        ("/api/watchlist", {"ticker": LONG_TICKER}),
    ],
)
def test_a_ticker_longer_than_the_column_is_refused_at_the_door(
    client: FlaskClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    resp = client.post(path, json=body, headers=headers)
    assert resp.status_code == 422, resp.json
    assert "40" in resp.json["error"]["message"]
    assert resp.json["error"]["details"][0]["loc"][:2] in (["body", "tickers"], ["body", "ticker"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    resp = client.post(path, json=body | {"tickers": ["A" * 19 + "/" + "B" * 20]}, headers=headers)
    if path != "/api/watchlist":
        assert resp.status_code == 202, resp.json  # 40 characters fit


def test_a_ticker_whose_result_the_database_refuses_is_that_tickers_error(
    client: FlaskClient, headers: dict[str, str], user: Any
) -> None:
    job_id = _analyze(client, headers, tickers=["ETH/BTC", "LTC/BTC"]).json["id"]
    ok = {"ticker": "ETH/BTC", "signal": "buy", "score": 0.5, "allocation": "100",
          "as_of": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    huge = {**ok, "ticker": "LTC/BTC", "allocation": "1e30"}  # beyond numeric(38, 18)
    result = {
        "timeframe": "1h",
        "pattern": None,
        "tickers": [ok, huge],
        "analysed": 2,
        "errors": 0,
        "allocated": "1e30",
        "cash": "0",
        "details": {"ETH/BTC": ok, "LTC/BTC": huge},
    }
    job = JobInfo(job_id, user.id, "analysis", {}, 1, 3)
    with session_scope() as s:
        summary = store_analysis_results(s, job, result)
        dialect = s.get_bind().dialect.name
    with session_scope() as s:
        rows = {r.ticker: r for r in s.scalars(select(AnalysisResult))}
    assert rows["ETH/BTC"].error is None and rows["ETH/BTC"].signal == "buy"
    if dialect == "postgresql":  # numeric(38, 18) refuses it; SQLite stores decimal text
        assert rows["LTC/BTC"].error.startswith("not_stored") and rows["LTC/BTC"].signal is None
        assert summary["tickers"][1]["error"]["code"] == "not_stored"
        assert (summary["analysed"], summary["errors"]) == (1, 1)
    else:
        assert rows["LTC/BTC"].error is None and summary["errors"] == 0
    assert summary["tickers"][0] == ok
