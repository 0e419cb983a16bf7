"""Strategy documents against the hand-written strategies they replace, in the same run.

    .venv/bin/python bench/bench_strategies.py [--repeat R]

Loads the largest 5m file of ../shared/data/ohlcv or OHLCV_DIR (about 26,000 candles;
the shipped sample in data/candles when neither is there) and, for every template, the time
to compile it (parse, check, bind the default parameters) and to evaluate its signals over
all the candles, best of R runs; for the four built-ins also the hand-written strategy's
signal time and the ratio (goal: a template within 1.5x of the code it replaces).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.strategies import get_strategy  # noqa: E402
from app.domain.strategies.doc_model import parse_document  # noqa: E402
from app.domain.strategies.doc_strategy import DocumentStrategy  # noqa: E402
from app.domain.strategies.templates import template_document, template_names  # noqa: E402
from app.market.csv_candles import load_candle_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OHLCV_DIR", ROOT.parent / "shared" / "data" / "ohlcv"))
BUILT_INS = {"bollinger_breakout", "macd_trend", "rsi_mean_reversion", "sma_crossover"}


def largest_5m() -> Path:
    for folder in (SHARED, ROOT / "data" / "candles"):
        files = sorted(folder.glob("*_5m.csv"), key=lambda p: p.stat().st_size, reverse=True)
        if files:
            return files[0]
    sys.exit("no 5m candle file found")


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    path = largest_5m()
    candles = load_candle_file(path)[1].candles
    print(f"{path.name}: {len(candles)} candles, best of {args.repeat}")
    print(f"{'template':<26}{'compile ms':>11}{'signals ms':>11}{'both ms':>9}{'hand ms':>9}"
          f"{'signals/hand':>14}{'both/hand':>11}")  # fmt: skip
    for name in template_names():
        raw = json.loads(template_document(name).model_dump_json(exclude_none=True))  # type: ignore[union-attr]

        def compile_(raw: dict = raw) -> DocumentStrategy:  # type: ignore[type-arg]
            strategy = DocumentStrategy(parse_document(raw), timeframe="5m")
            strategy.program(strategy.default_params())
            return strategy

        compile_s = best_of(args.repeat, compile_)
        doc = compile_()
        params = doc.default_params()
        doc_s = best_of(args.repeat, lambda: doc.signals(candles, params))  # noqa: B023
        both_s = compile_s + doc_s
        line = f"{name:<26}{compile_s * 1e3:>11.2f}{doc_s * 1e3:>11.2f}{both_s * 1e3:>9.2f}"
        if name in BUILT_INS:
            hand = get_strategy(name)
            hand_params = hand.default_params()
            hand_s = best_of(args.repeat, lambda: hand.signals(candles, hand_params))  # noqa: B023
            line += f"{hand_s * 1e3:>9.2f}{doc_s / hand_s:>13.2f}x{both_s / hand_s:>10.2f}x"
        print(line)


if __name__ == "__main__":
    main()
