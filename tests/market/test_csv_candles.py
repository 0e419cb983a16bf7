"""Candle CSV parsing, validation and atomic import."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from app.errors import ValidationFailed
from app.market.csv_candles import (
    CandleFileName,
    import_candle_file,
    load_candle_file,
    parse_candle_text,
)
from tests.market.conftest import SAMPLE_DIR

HEADER = "timestamp,open,high,low,close,volume"
T0 = 1_519_171_200_000  # 2018-02-21T00:00:00Z, 5m aligned
STEP = 300_000


def row(i: int, o: str = "0.1", h: str = "0.2", lo: str = "0.05", c: str = "0.15") -> str:
    return f"{T0 + i * STEP},{o},{h},{lo},{c},12.5"


def text(*rows: str, header: bool = True) -> str:
    return "\n".join(([HEADER] if header else []) + list(rows)) + "\n"


def reject(body: str) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as err:
        parse_candle_text(body, "5m", "bad.csv")
    assert err.value.code == "invalid_candles"
    assert err.value.status == 422
    return err.value


def lines_of(err: ValidationFailed) -> list[int]:
    return [d["line"] for d in err.details]


def test_shipped_sample_is_valid() -> None:
    files = sorted(SAMPLE_DIR.glob("*.csv"))
    assert [f.name for f in files] == [
        "BINANCE_ETH-BTC_5m.csv",
        "BINANCE_LTC-BTC_5m.csv",
        "BINANCE_XMR-BTC_5m.csv",
    ]
    assert sum(f.stat().st_size for f in files) < 3 * 1024 * 1024
    for f in files:
        name, series = load_candle_file(f)
        c = series.candles
        assert name.exchange == "BINANCE" and name.quote == "BTC" and name.timeframe == "5m"
        assert len(c) == 6336
        assert series.gaps.count == 0
        assert np.all(np.diff(c.ts) == STEP)
        assert c.ts.dtype == np.int64 and c.close.dtype == np.float64
        assert series.price_step == Decimal("0.000001")


def test_header_is_optional_and_values_exact() -> None:
    rows = [row(0), row(1, "0.097579", "0.097654", "0.09741", "0.09746")]
    with_header = parse_candle_text(text(*rows), "5m").candles
    without = parse_candle_text(text(*rows, header=False), "5m").candles
    for a, b in zip(
        (with_header.ts, with_header.open, with_header.close),
        (without.ts, without.open, without.close),
        strict=True,
    ):
        assert a.tolist() == b.tolist()
    assert with_header.ts.tolist() == [T0, T0 + STEP]
    assert with_header.high[1] == 0.097654


def test_steps_inferred_from_written_decimals() -> None:
    series = parse_candle_text(
        text(f"{T0},0.00004107,0.00004121,0.000041,0.00004118,240972.0"), "5m"
    )
    assert series.price_step == Decimal("1E-8")
    assert series.amount_step == Decimal("1")


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        ([row(0), row(2), row(1)], 4, "not after the previous row"),
        ([row(0), row(1), row(1)], 4, "duplicate timestamp"),
        ([row(0), row(1, c="abc")], 3, "close is not a number"),
        ([row(0), row(1, h="0.01", lo="0.3")], 3, "high is below low"),
        ([row(0), row(1, h="0.12")], 3, "high is below max(open, close)"),
        ([row(0), row(1, lo="0.2", h="0.3")], 3, "low is above min(open, close)"),
        ([row(0), f"{T0 + 1000},0.1,0.2,0.05,0.15,1"], 3, "not aligned"),
        ([row(0), row(1, o="0", lo="0")], 3, "prices must be > 0"),
        ([row(0), f"{T0 + STEP},0.1,0.2,0.05,0.15,-1"], 3, "volume must be >= 0"),
        ([row(0), f"{T0 + STEP},0.1,0.2,0.05,nan,1"], 3, "not a finite number"),
        ([row(0), f"{T0 + STEP},0.1,0.2,0.05,0.15"], 3, "expected 6 columns, found 5"),
        ([row(0), row(1) + ",7"], 3, "expected 6 columns, found 7"),
        ([row(0), f"{T0 + STEP}.5,0.1,0.2,0.05,0.15,1"], 3, "whole ms"),
    ],
)
def test_malformed_rows_are_rejected_with_line_numbers(
    rows: list[str], line: int, fragment: str
) -> None:
    err = reject(text(*rows))
    assert line in lines_of(err)
    assert any(fragment in d["msg"] for d in err.details if d["line"] == line)
    assert f"line {line}" in err.message
    assert "bad.csv" in err.message


def test_every_bad_line_is_reported_up_to_a_cap() -> None:
    rows = [row(i) for i in range(50)]
    for i in (10, 20, 30):
        rows[i] = row(i, h="0.01", lo="0.3")
    err = reject(text(*rows))
    assert {12, 22, 32} <= set(lines_of(err))
    many = reject(text(*[row(i, c="x") for i in range(100)]))
    assert len(many.details) == 20


@pytest.mark.parametrize(
    "body",
    ["", "\n\n", HEADER + "\n", "time,o,h,l,c,v\n" + row(0) + "\n", "a,b\n"],
)
def test_empty_or_unrecognised_files_are_rejected(body: str) -> None:
    reject(body)


def test_gaps_are_reported_not_rejected() -> None:
    present = [0, 1, 2, 5, 6, 10] + list(range(11, 30)) + [40]
    series = parse_candle_text(text(*[row(i) for i in present]), "5m")
    gaps = series.gaps
    assert gaps.count == 3
    assert gaps.missing_candles == 2 + 3 + 10
    first = gaps.first[0]
    assert (first.after_ts, first.next_ts, first.missing) == (T0 + 2 * STEP, T0 + 5 * STEP, 2)
    assert gaps.as_dict()["count"] == 3


def test_file_names() -> None:
    name = CandleFileName.parse("/x/y/BINANCE_ETH-BTC_5m.csv")
    assert (name.exchange, name.symbol, name.timeframe) == ("BINANCE", "ETH/BTC", "5m")
    assert name.filename == "BINANCE_ETH-BTC_5m.csv"
    assert CandleFileName.from_symbol("kraken", "xbt/eur", "1h").filename == "KRAKEN_XBT-EUR_1h.csv"
    for bad in ("eth.csv", "BINANCE_ETHBTC_5m.csv", "BINANCE_ETH-BTC_7m.csv", "B_E-B_5m.txt"):
        with pytest.raises(ValidationFailed):
            CandleFileName.parse(bad)


def _write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_import_writes_a_normalised_copy_and_reports_progress(tmp_path: Path) -> None:
    rows = [row(i) for i in range(12_000)]
    src = _write(tmp_path / "upload.csv", text(*rows, header=False))
    target = tmp_path / "imported"
    progress: list[tuple[int, int]] = []
    name = CandleFileName("KRAKEN", "ETH", "BTC", "5m")
    result = import_candle_file(
        src, target, name=name, on_progress=lambda d, t: progress.append((d, t))
    )
    assert result.path == target / "KRAKEN_ETH-BTC_5m.csv"
    assert result.rows == 12_000 and not result.replaced
    assert (result.first_ts, result.last_ts) == (T0, T0 + 11_999 * STEP)
    assert progress[0] == (0, 12_000) and progress[-1] == (12_000, 12_000)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert len(progress) > 2
    assert sorted(p.name for p in target.iterdir()) == ["KRAKEN_ETH-BTC_5m.csv"]
    assert result.path.read_text().splitlines()[0] == HEADER
    back = load_candle_file(result.path)[1].candles
    orig = parse_candle_text(src.read_text(), "5m").candles
    assert back.ts.tolist() == orig.ts.tolist()
    assert back.close.tolist() == orig.close.tolist()
    again = import_candle_file(src, target, name=name)
    assert again.replaced


def test_bad_file_never_replaces_a_good_one(tmp_path: Path) -> None:
    target = tmp_path / "imported"
    good = _write(tmp_path / "BINANCE_ETH-BTC_5m.csv", text(row(0), row(1)))
    import_candle_file(good, target)
    before = (target / "BINANCE_ETH-BTC_5m.csv").read_bytes()
    bad = tmp_path / "bad" / "BINANCE_ETH-BTC_5m.csv"
    bad.parent.mkdir()
    _write(bad, text(row(0), row(1, c="oops")))
    with pytest.raises(ValidationFailed) as err:
        import_candle_file(bad, target)
    assert err.value.details[0]["line"] == 3
    assert (target / "BINANCE_ETH-BTC_5m.csv").read_bytes() == before
    assert sorted(p.name for p in target.iterdir()) == ["BINANCE_ETH-BTC_5m.csv"]


def test_invalid_file_writes_nothing_not_even_the_directory(tmp_path: Path) -> None:
    bad = _write(tmp_path / "BINANCE_ETH-BTC_5m.csv", text(row(1), row(0)))
    with pytest.raises(ValidationFailed):
        import_candle_file(bad, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_failure_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "imported"
    (tmp_path / "old").mkdir()
    old = _write(tmp_path / "old" / "BINANCE_ETH-BTC_5m.csv", text(row(0)))
    import_candle_file(old, target)
    before = (target / "BINANCE_ETH-BTC_5m.csv").read_bytes()
    src = _write(tmp_path / "BINANCE_ETH-BTC_5m.csv", text(*[row(i) for i in range(11_000)]))

    def explode(done: int, total: int) -> None:
        if done > 0:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        import_candle_file(src, target, on_progress=explode)
    assert (target / "BINANCE_ETH-BTC_5m.csv").read_bytes() == before
    assert sorted(p.name for p in target.iterdir()) == ["BINANCE_ETH-BTC_5m.csv"]
