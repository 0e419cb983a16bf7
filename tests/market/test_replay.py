"""The replay market source over the shipped sample (and imported files)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from app.domain.candles import Candles
from app.market import replay
from app.market.base import MarketSource
from app.market.csv_candles import CandleFileName, import_candle_file, load_candle_file
from app.market.errors import UnknownSymbol, UnknownTimeframe
from app.market.replay import ReplayMarketSource
from tests.market.conftest import REPO, SAMPLE_DIR

ANCHOR_MS = 1_767_225_600_000  # default anchor, 2026-01-01T00:00:00Z
M5 = 300_000
H1 = 3_600_000
D1 = 86_400_000
ROWS = 6336
PERIOD = ROWS * M5  # 22 days
TF_MS = {"5m": M5, "15m": 900_000, "1h": H1, "4h": 4 * H1, "1d": D1}


class Wall:
    """A controllable wall clock (epoch seconds)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
def wall() -> Wall:
    return Wall(ANCHOR_MS + 3 * D1 + 5 * H1 + 7 * M5 + 12_345)


@pytest.fixture
def source(wall: Wall) -> ReplayMarketSource:
    return ReplayMarketSource([SAMPLE_DIR], now=wall)


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candle_file(SAMPLE_DIR / "BINANCE_ETH-BTC_5m.csv")[1].candles


def _digest(c: Candles) -> str:
    h = hashlib.sha256()
    for a in (c.ts, c.open, c.high, c.low, c.close, c.volume):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_is_a_market_source(source: ReplayMarketSource) -> None:
    assert isinstance(source, MarketSource)
    assert source.name == "replay"


def test_sample_serves_on_a_fresh_clone_without_network(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import json, socket, sys

        def no_network(*a, **k):
            raise OSError("network disabled in this test")

        socket.socket.connect = no_network
        socket.create_connection = no_network
        socket.getaddrinfo = no_network
        from app.market.factory import build_market_source

        src = build_market_source(
            "replay",
            candles_dir={str(SAMPLE_DIR)!r},
            candles_import_dir={str(tmp_path / "not-created-yet")!r},
        )
        out = {{
            "symbols": [m.symbol for m in src.markets()],
            "n5m": len(src.candles("ETH/BTC", "5m", limit=200)),
            "n1h": len(src.candles("LTC/BTC", "1h", limit=200)),
            "price": str(src.last_price("XMR/BTC")),
            "ccxt": "ccxt" in sys.modules,
        }}
        print(json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["symbols"] == ["ETH/BTC", "LTC/BTC", "XMR/BTC"]
    assert out["n5m"] == 200 and out["n1h"] == 200  # SMA 200 warms up
    assert Decimal(out["price"]) > 0
    assert out["ccxt"] is False


def test_markets_inferred_from_data(source: ReplayMarketSource) -> None:
    markets = {m.symbol: m for m in source.markets()}
    assert set(markets) == {"ETH/BTC", "LTC/BTC", "XMR/BTC"}
    eth = source.market("ETH/BTC")
    assert (eth.base, eth.quote) == ("ETH", "BTC")
    assert eth.price_step == Decimal("0.000001")
    assert eth.amount_step == Decimal("0.001")
    assert source.market("LTC/BTC").amount_step == Decimal("0.01")
    assert eth.min_amount is None and eth.min_notional is None
    assert source.timeframes("ETH/BTC") == ["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "4h", "1d"])
@pytest.mark.parametrize("offset", [0, 1, M5 - 1, H1 + 123_456])
def test_only_closed_candles(wall: Wall, timeframe: str, offset: int) -> None:
    tf = TF_MS[timeframe]
    wall.ms = ANCHOR_MS + 9 * D1 + offset
    source = ReplayMarketSource([SAMPLE_DIR], now=wall)
    candles = source.candles("ETH/BTC", timeframe, limit=30)
    assert len(candles) == 30
    assert np.all(candles.ts + tf <= wall.ms)
    assert candles.ts[-1] == wall.ms // tf * tf - tf  # the newest closed one, no later
    assert np.all(np.diff(candles.ts) == tf)


def test_a_candle_appears_exactly_when_it_closes(wall: Wall, source: ReplayMarketSource) -> None:
    wall.ms = ANCHOR_MS + 50 * M5 - 1
    before = source.candles("ETH/BTC", "5m", limit=20)
    wall.ms += 1
    after = source.candles("ETH/BTC", "5m", limit=20)
    assert after.ts[-1] == before.ts[-1] + M5 == ANCHOR_MS + 49 * M5
    assert after.ts[:-1].tolist() == before.ts[1:].tolist()
    assert after.close[:-1].tolist() == before.close[1:].tolist()


def test_presents_recorded_values_on_shifted_times(
    wall: Wall, source: ReplayMarketSource, eth: Candles
) -> None:
    wall.ms = ANCHOR_MS + 10 * M5 + 1
    got = source.candles("ETH/BTC", "5m", limit=10)
    assert got.ts.tolist() == [ANCHOR_MS + i * M5 for i in range(10)]
    for col in ("open", "high", "low", "close", "volume"):
        assert getattr(got, col).tolist() == getattr(eth, col)[:10].tolist()
    assert source.last_price("ETH/BTC") == Decimal(repr(float(eth.close[9])))


def test_loops_with_monotonic_time(wall: Wall, source: ReplayMarketSource, eth: Candles) -> None:
    wall.ms = ANCHOR_MS + 4 * PERIOD + 3 * M5
    got = source.candles("ETH/BTC", "5m", limit=6)
    assert got.ts.tolist() == [ANCHOR_MS + 4 * PERIOD + i * M5 for i in range(-3, 3)]
    assert got.close.tolist() == eth.close[-3:].tolist() + eth.close[:3].tolist()
    long = source.candles("ETH/BTC", "5m", limit=replay.MAX_LIMIT)
    assert len(long) == replay.MAX_LIMIT  # more than one loop of history
    assert np.all(np.diff(long.ts) == M5)


def test_history_before_the_anchor(wall: Wall, source: ReplayMarketSource, eth: Candles) -> None:
    wall.ms = ANCHOR_MS + 2 * M5
    got = source.candles("ETH/BTC", "5m", since_ms=ANCHOR_MS - 2 * M5)
    assert got.ts.tolist() == [ANCHOR_MS + i * M5 for i in (-2, -1, 0, 1)]
    assert got.close.tolist() == eth.close[-2:].tolist() + eth.close[:2].tolist()


def test_since_and_limit(wall: Wall, source: ReplayMarketSource) -> None:
    wall.ms = ANCHOR_MS + 2 * D1
    got = source.candles("ETH/BTC", "1h", since_ms=ANCHOR_MS + 5 * H1 + 1, limit=4)
    assert got.ts.tolist() == [ANCHOR_MS + h * H1 for h in (6, 7, 8, 9)]
    tail = source.candles("ETH/BTC", "1h", since_ms=ANCHOR_MS + 46 * H1)
    assert tail.ts.tolist() == [ANCHOR_MS + 46 * H1, ANCHOR_MS + 47 * H1]
    assert len(source.candles("ETH/BTC", "5m", since_ms=wall.ms)) == 0
    assert len(source.candles("ETH/BTC", "5m", limit=0)) == 0
    assert len(source.candles("ETH/BTC", "5m")) == replay.DEFAULT_LIMIT


def test_aggregated_candles_match_their_5m_candles(wall: Wall, source: ReplayMarketSource) -> None:
    wall.ms = ANCHOR_MS + PERIOD + 3 * H1 + 17  # includes a loop boundary in the window
    hours = source.candles("ETH/BTC", "1h", limit=6)
    fives = source.candles("ETH/BTC", "5m", since_ms=int(hours.ts[0]), limit=72)
    assert fives.ts[0] == hours.ts[0] and len(fives) == 72
    for i in range(6):
        part = fives.slice(12 * i, 12 * i + 12)
        assert hours.ts[i] == part.ts[0]
        assert hours.open[i] == part.open[0]
        assert hours.high[i] == part.high.max()
        assert hours.low[i] == part.low.min()
        assert hours.close[i] == part.close[-1]
        assert hours.volume[i] == pytest.approx(part.volume.sum())


def test_unknown_symbol_and_timeframes(source: ReplayMarketSource) -> None:
    with pytest.raises(UnknownSymbol) as err:
        source.candles("DOGE/BTC", "5m")
    assert err.value.status == 404
    with pytest.raises(UnknownSymbol):
        source.market("DOGE/BTC")
    with pytest.raises(UnknownSymbol):
        source.last_price("DOGE/BTC")
    for timeframe in ("1m", "3m", "7m", "1w", ""):
        with pytest.raises(UnknownTimeframe) as tf_err:
            source.candles("ETH/BTC", timeframe)
        assert tf_err.value.status == 422


def test_same_answer_in_another_process(wall: Wall, source: ReplayMarketSource) -> None:
    wall.ms = ANCHOR_MS + 123 * D1 + 4 * H1 + 999
    here = {tf: _digest(source.candles("XMR/BTC", tf, limit=300)) for tf in ("5m", "4h")}
    code = textwrap.dedent(
        f"""
        import hashlib, json, numpy as np
        from app.market.replay import ReplayMarketSource

        src = ReplayMarketSource([{str(SAMPLE_DIR)!r}], now=lambda: {wall.ms} / 1000)
        out = {{}}
        for tf in ("5m", "4h"):
            c = src.candles("XMR/BTC", tf, limit=300)
            h = hashlib.sha256()
            for a in (c.ts, c.open, c.high, c.low, c.close, c.volume):
                h.update(np.ascontiguousarray(a).tobytes())
            out[tf] = h.hexdigest()
        print(json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == here
    other = ReplayMarketSource([SAMPLE_DIR], anchor="2026-01-01T00:00:00Z", now=wall)
    assert _digest(other.candles("XMR/BTC", "5m", limit=300)) == here["5m"]


def test_speed_runs_the_recorded_time_faster(wall: Wall) -> None:
    wall.ms = ANCHOR_MS + H1
    fast = ReplayMarketSource([SAMPLE_DIR], speed=2.0, now=wall)
    got = fast.candles("ETH/BTC", "5m", since_ms=ANCHOR_MS)
    assert len(got) == 24  # two recorded hours in one wall hour
    assert got.ts[-1] == ANCHOR_MS + 23 * M5


def _synthetic(path: Path, price: str, rows: int = 300) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [
        f"{1_519_171_200_000 + i * M5},{price},{price},{price},{price},1.5" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imported_files_override_and_appear_without_restart(tmp_path: Path, wall: Wall) -> None:
    imports = tmp_path / "imports"
    source = ReplayMarketSource([SAMPLE_DIR, imports], now=wall)
    assert len(source.markets()) == 3
    import_candle_file(_synthetic(tmp_path / "BINANCE_ADA-BTC_5m.csv", "0.00004"), imports)
    assert "ADA/BTC" in [m.symbol for m in source.markets()]
    assert source.market("ADA/BTC").price_step == Decimal("0.00001")
    import_candle_file(_synthetic(tmp_path / "KRAKEN_ETH-BTC_5m.csv", "0.5"), imports)
    assert set(source.candles("ETH/BTC", "5m", limit=5).close.tolist()) == {0.5}


def test_invalid_file_is_skipped_not_fatal(tmp_path: Path, wall: Wall) -> None:
    bad_dir = tmp_path / "imports"
    bad_dir.mkdir()
    (bad_dir / "BINANCE_BAD-BTC_5m.csv").write_text("1,2,3\n")
    (bad_dir / "notes.csv").write_text("not a candle file name\n")
    mixed = ReplayMarketSource([SAMPLE_DIR, bad_dir], now=wall)
    assert [m.symbol for m in mixed.markets()] == ["ETH/BTC", "LTC/BTC", "XMR/BTC"]
    with pytest.raises(UnknownSymbol):
        mixed.candles("BAD/BTC", "5m")
    assert len(mixed.candles("ETH/BTC", "5m", limit=3)) == 3


def test_files_are_parsed_once_per_process(wall: Wall) -> None:
    path = SAMPLE_DIR / "BINANCE_LTC-BTC_5m.csv"
    ReplayMarketSource([SAMPLE_DIR], now=wall).candles("LTC/BTC", "5m", limit=1)
    first = replay._load_series(path)
    ReplayMarketSource([SAMPLE_DIR], now=wall).candles("LTC/BTC", "5m", limit=1)
    assert replay._load_series(path) is first
    assert CandleFileName.parse(path.name).symbol == "LTC/BTC"
