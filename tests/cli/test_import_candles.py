"""`flask import-candles`: valid files are imported (gaps reported) into the import directory,
where the replay feed picks them up; any invalid file imports nothing and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.market.replay import ReplayMarketSource
from config import get_settings, use_settings

FIVE_MIN_MS = 300_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def _csv(rows: int, *, skip: set[int] = frozenset(), start: float = 100.0) -> str:
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        if i in skip:
            continue
        p = start + i * 0.5
        lines.append(f"{T0 + i * FIVE_MIN_MS},{p:.2f},{p + 1:.2f},{p - 1:.2f},{p + 0.25:.2f},1.5")
    return "\n".join(lines) + "\n"


@pytest.fixture
def import_dir(app, tmp_path: Path) -> Iterator[Path]:
    previous = get_settings()
    target = tmp_path / "imported"
    use_settings(previous.model_copy(update={"candles_import_dir": str(target)}))
    yield target
    use_settings(previous)


def _run(app, *args: str):
    return app.test_cli_runner().invoke(args=["import-candles", *args])


def test_valid_file_is_imported_with_its_gaps_reported(app, import_dir, tmp_path) -> None:
    src = tmp_path / "KRAKEN_BTC-USDT_5m.csv"
    src.write_text(_csv(40, skip={10, 11, 30}))
    result = _run(app, str(src))
    assert result.exit_code == 0, result.output
    assert "BTC/USDT 5m (KRAKEN): 37 candles" in result.output
    assert "2 gap(s), 3 missing candle(s)" in result.output
    assert "after 2026-01-01T00:45Z (2 missing)" in result.output
    assert "37 candles 2026-01-01T00:00Z..2026-01-01T03:15Z" in result.output
    written = import_dir / "KRAKEN_BTC-USDT_5m.csv"
    assert written.read_text().splitlines()[0] == "timestamp,open,high,low,close,volume"
    assert len(written.read_text().splitlines()) == 38
    source = ReplayMarketSource([import_dir], now=lambda: T0 / 1000 + 86_400 * 3)
    assert "BTC/USDT" in source.symbols()


def test_a_file_with_another_name_needs_its_market_spelled_out(app, import_dir, tmp_path) -> None:
    src = tmp_path / "download.csv"
    src.write_text(_csv(12))
    refused = _run(app, str(src))
    assert refused.exit_code == 1
    assert "does not follow <EXCHANGE>_<BASE>-<QUOTE>_<TIMEFRAME>.csv" in refused.output
    ok = _run(app, str(src), "--exchange", "luno", "--symbol", "XBT-ZAR", "--timeframe", "5m")
    assert ok.exit_code == 0, ok.output
    assert (import_dir / "LUNO_XBT-ZAR_5m.csv").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (_csv(5).replace(f"{T0 + 2 * FIVE_MIN_MS},101.00,", f"{T0 + 2 * FIVE_MIN_MS},abc,"),
         "line 4: open is not a number"),
        (_csv(5) + _csv(5).splitlines()[-1] + "\n", "duplicate timestamp"),
        ("timestamp,open,high,low,close,volume\n"
         f"{T0 + FIVE_MIN_MS},1,2,0.5,1.5,1\n{T0},1,2,0.5,1.5,1\n", "not after the previous row"),
        (_csv(3).replace(",1.5\n", ",1.5,9\n", 1), "expected 6 columns, found 7"),
        (f"{T0},1,0.5,0.4,1,1\n", "high is below max(open, close)"),
        ("", "no candle rows"),
    ],
)  # fmt: skip
def test_malformed_files_import_nothing_and_keep_what_is_stored(
    app, import_dir, tmp_path, content, needle
) -> None:
    good = tmp_path / "BINANCE_SOL-USDT_5m.csv"
    good.write_text(_csv(20))
    assert _run(app, str(good)).exit_code == 0
    stored = (import_dir / good.name).read_bytes()

    bad = tmp_path / "bad" / good.name  # same market: it would replace the stored file
    bad.parent.mkdir()
    bad.write_text(content)
    other = tmp_path / "BINANCE_ADA-USDT_5m.csv"
    other.write_text(_csv(10))
    result = _run(app, str(other), str(bad))
    assert result.exit_code == 1
    assert needle in result.output
    assert "nothing was imported" in result.output
    assert (import_dir / good.name).read_bytes() == stored
    assert not (import_dir / other.name).exists()


def test_unknown_timeframe_and_missing_file_are_clear_errors(app, import_dir, tmp_path) -> None:
    weird = tmp_path / "BINANCE_ETH-BTC_7m.csv"
    weird.write_text(_csv(3))
    result = _run(app, str(weird), str(tmp_path / "BINANCE_ETH-BTC_5m.csv"))
    assert result.exit_code == 1
    assert "unknown timeframe '7m'" in result.output
    assert "file not found" in result.output
    assert not import_dir.exists() or not any(import_dir.iterdir())
