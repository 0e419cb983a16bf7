"""Where the benches find recorded candles: the larger files beside the checkout
(`../shared/data/ohlcv`, or `OHLCV_DIR`) when present, else the sample shipped in
`data/candles`, so every bench runs from any clone."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "candles"
SHARED = Path(os.environ.get("OHLCV_DIR", ROOT.parent / "shared" / "data" / "ohlcv"))


def candle_files(pattern: str = "*.csv") -> list[Path]:
    """The recorded files matching `pattern`, largest first (never empty in a clone)."""
    for folder in (SHARED, SHIPPED):
        files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_size, reverse=True)
        if files:
            return files
    raise SystemExit(f"no candle file matching {pattern} in {SHARED} or {SHIPPED}")


def largest_candle_file(pattern: str = "*.csv") -> Path:
    return candle_files(pattern)[0]
