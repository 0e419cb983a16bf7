"""Downloading candles from an exchange (the local fake Binance, answering klines by
`startTime`/`limit` like the real one): paging, resuming, gaps, a failing page retried, a run
that dies mid-way and resumes, the admin endpoint's job with its progress events, and the
replay feed serving the result."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.jobs import job_runner
from app.market.registry import close_market_sources
from app.market.replay import ReplayMarketSource
from app.store.db import session_scope
from app.store.models.events import Event
from config import get_settings, use_settings
from tests.market.exchange_server import RecordedExchange, Request

HOUR_MS = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
ROWS = 2_400
GAP = range(1_300, 1_305)  # five hours the exchange has no candles for
PAGE_CAP = 500  # the fake answers at most this many rows, however many are asked for
KLINES = "GET /api/v3/klines"


def _row(i: int) -> list[Any]:
    p = 40_000 + (i % 97) * 3.5
    ts = T0 + i * HOUR_MS
    return [ts, f"{p:.2f}", f"{p + 10:.2f}", f"{p - 10:.2f}", f"{p + 1.25:.2f}", "2.50000",
            ts + HOUR_MS - 1, "1000.0", 10, "1.0", "1.0", "0"]  # fmt: skip


CANDLES = [_row(i) for i in range(ROWS) if i not in GAP]


def _klines(req: Request) -> list[list[Any]]:
    since = int(req.params.get("startTime", T0))
    limit = min(int(req.params.get("limit", 500)), PAGE_CAP)
    return [r for r in CANDLES if r[0] >= since][:limit]


@pytest.fixture
def exchange(app: Any, tmp_path: Path) -> Iterator[RecordedExchange]:
    previous = get_settings()
    with RecordedExchange("binance") as server:
        server.answer(KLINES, _klines)
        server.state.timeout_sleep_s = 0.5
        use_settings(
            previous.model_copy(
                update={
                    "candles_import_dir": str(tmp_path / "imported"),
                    "ccxt_exchange": "binance",
                    "ccxt_base_url": server.url,
                    "ccxt_backoff_base_s": 0.0,
                    "ccxt_max_retries": 2,
                    "ccxt_timeout_ms": 300,
                }
            )
        )
        close_market_sources()
        yield server
        close_market_sources()
    use_settings(previous)


def _iso(i: int) -> str:
    return datetime.fromtimestamp((T0 + i * HOUR_MS) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _run(app: Any, *args: str, start: int = 0, end: int = ROWS) -> Any:
    return app.test_cli_runner().invoke(
        args=[
            "download-candles",
            "--exchange",
            "binance",
            "--timeframe",
            "1h",
            "--start",
            _iso(start),
            "--end",
            _iso(end),
            *args,
        ]  # fmt: skip
    )


def _stored(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def test_pages_through_the_range_reports_gaps_and_a_second_run_fetches_nothing(
    app: Any, exchange: RecordedExchange
) -> None:
    first = _run(app, "--symbol", "BTC/USDT")
    assert first.exit_code == 0, first.output
    stored = ROWS - len(GAP)
    assert f"BTC/USDT 1h (BINANCE): {stored} new candle(s) in 5 page(s), {stored} stored" in (
        first.output
    )
    assert "1 gap(s), 5 missing candle(s); first: after 2026-02-24T03:00Z (5 missing)" in (
        first.output
    )
    pages = exchange.requests(KLINES)
    assert [int(r.params["startTime"]) for r in pages] == [
        T0, T0 + 500 * HOUR_MS, T0 + 1000 * HOUR_MS, T0 + 1505 * HOUR_MS, T0 + 2005 * HOUR_MS
    ]  # fmt: skip
    path = Path(get_settings().candles_import_dir) / "BINANCE_BTC-USDT_1h.csv"
    rows = _stored(path)
    assert len(rows) == stored
    assert rows[0] == f"{T0},40000.00,40010.00,39990.00,40001.25,2.5"

    again = _run(app, "--symbol", "BTC-USDT")
    assert again.exit_code == 0, again.output
    assert "0 new candle(s) in 0 page(s)" in again.output
    assert len(exchange.requests(KLINES)) == len(pages)
    assert _stored(path) == rows

    source = ReplayMarketSource([path.parent], now=lambda: T0 / 1000 + 86_400 * 200)
    assert "BTC/USDT" in source.symbols()
    served = source.candles("BTC/USDT", "1h", since_ms=T0, limit=10)
    assert int(served.ts[0]) == T0 and float(served.close[0]) == 40001.25


def test_a_longer_range_fetches_only_the_new_end(app: Any, exchange: RecordedExchange) -> None:
    assert _run(app, "--symbol", "ETH/USDT", end=600).exit_code == 0
    before = len(exchange.requests(KLINES))
    more = _run(app, "--symbol", "ETH/USDT", end=900)
    assert more.exit_code == 0, more.output
    assert "300 new candle(s) in 1 page(s), 900 stored" in more.output
    assert int(exchange.requests(KLINES)[before].params["startTime"]) == T0 + 600 * HOUR_MS


def test_a_failing_page_is_retried_and_nothing_is_lost(
    app: Any, exchange: RecordedExchange
) -> None:
    exchange.fail(KLINES, "rate_limit", "timeout")
    result = _run(app, "--symbol", "ADA/USDT", end=1_000)
    assert result.exit_code == 0, result.output
    assert "1000 new candle(s) in 2 page(s), 1000 stored" in result.output
    path = Path(get_settings().candles_import_dir) / "BINANCE_ADA-USDT_1h.csv"
    assert len(_stored(path)) == 1_000


def test_a_run_that_dies_mid_way_keeps_its_pages_and_the_next_run_resumes(
    app: Any, exchange: RecordedExchange
) -> None:
    def third_page_fails(req: Request) -> list[list[Any]]:
        if len(exchange.requests(KLINES)) == 2:  # after page 2, more failures than retries (2)
            exchange.fail(KLINES, "rate_limit", "rate_limit", "rate_limit")
        return _klines(req)

    exchange.answer(KLINES, third_page_fails)
    died = _run(app, "--symbol", "BTC/USDT")
    assert died.exit_code == 1
    assert "run again to resume" in died.output
    path = Path(get_settings().candles_import_dir) / "BINANCE_BTC-USDT_1h.csv"
    assert len(_stored(path)) == 1_000  # the two pages that answered are kept

    exchange.answer(KLINES, _klines)
    before = len(exchange.requests(KLINES))
    resumed = _run(app, "--symbol", "BTC/USDT")
    assert resumed.exit_code == 0, resumed.output
    assert int(exchange.requests(KLINES)[before].params["startTime"]) == T0 + 1000 * HOUR_MS
    assert f"{ROWS - 1000 - len(GAP)} new candle(s)" in resumed.output
    assert len(_stored(path)) == ROWS - len(GAP)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--exchange", "nosuchexchange"], "unknown exchange 'nosuchexchange'"),
        (["--start", "2026-01-05", "--end", "2026-01-04"], "must end after it starts"),
        (["--timeframe", "7m"], "unknown timeframe '7m'"),
        (["--symbol", "BTCUSDT"], "BASE/QUOTE"),
    ],
)
def test_bad_input_is_refused_before_anything_is_fetched(
    app: Any, exchange: RecordedExchange, args: list[str], needle: str
) -> None:
    base = {"--exchange": "binance", "--symbol": "BTC/USDT", "--timeframe": "1h",
            "--start": "2026-01-01", "--end": "2026-01-02"}  # fmt: skip
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    result = app.test_cli_runner().invoke(args=["download-candles", *flat])
    assert result.exit_code == 2
    assert needle in result.output
    assert exchange.requests(KLINES) == []


def test_admin_endpoint_queues_a_job_that_downloads_with_progress_events(
    app: Any, client: Any, make_user: Any, auth_headers: Any, exchange: RecordedExchange
) -> None:
    admin = make_user(role="admin")
    body = {"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"], "timeframe": "1h",
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-26T00:00:00Z"}  # fmt: skip
    user = make_user()
    assert (
        client.post(
            "/api/admin/candle-downloads", json=body, headers=auth_headers(user)
        ).status_code
        == 403
    )  # noqa: E501
    r = client.post("/api/admin/candle-downloads", json=body, headers=auth_headers(admin))
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    assert r.headers["Location"] == f"/api/jobs/{job_id}"

    assert job_runner.run_once(owner="test-worker") == [(job_id, "succeeded")]
    job = client.get(f"/api/jobs/{job_id}", headers=auth_headers(admin)).json
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    downloads = job["result"]["downloads"]
    assert [(d["symbol"], d["fetched"], d["stored"]) for d in downloads] == [
        ("BTC/USDT", 600, 600), ("ETH/USDT", 600, 600)
    ]  # fmt: skip
    with session_scope() as db:
        progress = [
            e.data
            for e in db.query(Event)
            .filter_by(user_id=admin.id, type="job_progress")
            .order_by(Event.id)
        ]
    assert progress and progress[-1] == {
        "job_id": job_id, "kind": "download_candles", "state": "succeeded", "progress": 1.0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exchange": "nosuchexchange"}, "exchange"),
        ({"end": "2025-12-31T00:00:00Z"}, "end"),
        ({"symbols": ["BTCUSDT"]}, "symbols"),
        ({"symbols": []}, "symbols"),
    ],
)
def test_admin_endpoint_refuses_bad_input_with_422(
    app: Any,
    client: Any,
    make_user: Any,
    auth_headers: Any,
    exchange: RecordedExchange,
    change: dict[str, Any],
    field: str,
) -> None:
    body = {"exchange": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h",
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", **change}  # fmt: skip
    r = client.post(
        "/api/admin/candle-downloads", json=body, headers=auth_headers(make_user(role="admin"))
    )
    assert r.status_code == 422, r.json
    assert field in str(r.json)
    assert client.get("/api/jobs", headers=auth_headers(make_user())).json["total"] == 0
