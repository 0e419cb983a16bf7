"""The factory the config layer calls, and the import-time promise about ccxt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.market.ccxt_source import CcxtMarketSource
from app.market.factory import build_market_source
from app.market.replay import ReplayMarketSource
from tests.market.conftest import REPO, SAMPLE_DIR
from tests.market.exchange_server import RecordedExchange


def test_importing_the_sources_does_not_import_ccxt() -> None:
    code = (
        "import sys\n"
        "import app.market.replay, app.market.ccxt_source, app.market.factory\n"
        "import app.market.csv_candles, app.market.ccxt_precision, app.market.replay_clock\n"
        "print('ccxt' in sys.modules, 'flask' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_builds_replay_from_config_style_options(tmp_path: Path) -> None:
    source = build_market_source(
        "replay",
        candles_dir=str(SAMPLE_DIR),
        candles_import_dir=str(tmp_path / "imports"),
        anchor="2026-01-01T00:00:00Z",
        speed=1.0,
    )
    assert isinstance(source, ReplayMarketSource)
    assert source.dirs == (SAMPLE_DIR, tmp_path / "imports")
    assert source.clock.anchor_ms == 1_767_225_600_000
    listed = build_market_source("REPLAY", candles_dirs=[SAMPLE_DIR])
    assert [m.symbol for m in listed.markets()] == ["ETH/BTC", "LTC/BTC", "XMR/BTC"]


def test_builds_ccxt() -> None:
    with RecordedExchange("binance") as server:
        source = build_market_source(
            "ccxt", exchange="binance", base_url=server.url, timeout_ms=500, max_retries=0
        )
        try:
            assert isinstance(source, CcxtMarketSource)
            assert source.name == "ccxt:binance"
            assert source.market("BTC/USDT").price_step > 0
        finally:
            source.close()


@pytest.mark.parametrize(
    ("kind", "options", "fragment"),
    [
        ("paper", {}, "unknown market source"),
        ("replay", {}, "candles_dirs"),
        ("replay", {"candles_dirs": [SAMPLE_DIR], "speeed": 2}, "speeed"),
        ("ccxt", {}, "exchange_id"),
        ("ccxt", {"exchange_id": "binance", "apikey": "x"}, "apikey"),
    ],
)
def test_configuration_mistakes(kind: str, options: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        build_market_source(kind, **options)
