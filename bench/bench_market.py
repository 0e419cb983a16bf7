"""Market layer speed, as ratios against a baseline measured in the same run.

* CSV: `parse_candle_text` (parse + every validation rule + gap report + step inference) vs a
  bare ``numpy.loadtxt`` of the same text.
* Replay: ``candles(limit=500)`` on 5m, and 200 aggregated 1h candles, vs copying 500 rows out of
  the loaded arrays (the least any answer costs).
* ccxt: `CcxtMarketSource.candles` vs ccxt's own ``fetch_ohlcv`` against the same local fake
  exchange (so the ratio is the adapter's overhead: retry wrapper, lock, open-candle filter,
  numpy conversion).

Run: ``.venv/bin/python bench/bench_market.py``
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.market.csv_candles import parse_candle_text  # noqa: E402
from app.market.replay import ReplayMarketSource  # noqa: E402

SAMPLE = ROOT / "data" / "candles"


def per_call(fn: Callable[[], object], repeat: int, rounds: int = 5) -> float:
    """Median seconds per call over a few rounds."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - t0) / repeat)
    return statistics.median(times)


def row(label: str, ours: float, base: float) -> None:
    print(f"{label:<44} {ours * 1e6:>10.1f} us {base * 1e6:>10.1f} us {ours / base:>8.2f}x")


def main() -> None:
    print(f"{'case':<44} {'ours':>13} {'baseline':>13} {'ratio':>9}")
    text = (SAMPLE / "BINANCE_ETH-BTC_5m.csv").read_text()
    body = text.splitlines()[1:]
    row(
        "csv: parse+validate 6336 rows vs loadtxt",
        per_call(lambda: parse_candle_text(text, "5m"), 10),
        per_call(lambda: np.loadtxt(body, delimiter=","), 10),
    )

    wall = 1_767_225_600 + 40 * 86_400 + 3 * 3600 + 17
    source = ReplayMarketSource([SAMPLE], now=lambda: wall)
    arrays = source._series("ETH/BTC")["5m"][1].candles
    base500 = per_call(lambda: [a[-500:].copy() for a in (arrays.ts, arrays.open, arrays.high,
                                                           arrays.low, arrays.close,
                                                           arrays.volume)], 2000)  # fmt: skip
    row(
        "replay: 500 x 5m vs copying 500 rows",
        per_call(lambda: source.candles("ETH/BTC", "5m", limit=500), 2000),
        base500,
    )
    row(
        "replay: 200 x 1h (aggregated) vs copying 500",
        per_call(lambda: source.candles("ETH/BTC", "1h", limit=200), 500),
        base500,
    )
    row(
        "replay: last_price vs copying 500 rows",
        per_call(lambda: source.last_price("ETH/BTC"), 2000),
        base500,
    )

    from app.market.ccxt_source import CcxtMarketSource
    from tests.market.exchange_server import RecordedExchange

    with RecordedExchange("binance") as server:
        ours = CcxtMarketSource("binance", base_url=server.url, config={"rateLimit": 0})
        ours.markets()
        raw = ours.exchange
        row(
            "ccxt: candles() vs raw fetch_ohlcv (local)",
            per_call(lambda: ours.candles("BTC/USDT", "1h", since_ms=1706628191000, limit=3), 50),
            per_call(lambda: raw.fetch_ohlcv("BTC/USDT", "1h", 1706628191000, 3), 50),
        )
        ours.close()


if __name__ == "__main__":
    main()
