"""Recorded exchange candles for the real-data tests: the larger files beside the checkout
(`../shared/data/ohlcv`, or `OHLCV_DIR`) when present, else the sample shipped in `data/candles`,
so these tests run in every clone instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "candles"
SHARED = Path(os.environ.get("OHLCV_DIR", ROOT.parent / "shared" / "data" / "ohlcv"))


def recorded_directory() -> Path:
    return SHARED if any(SHARED.glob("*.csv")) else SHIPPED


def recorded_files() -> list[Path]:
    return sorted(recorded_directory().glob("*.csv"))


def largest_recorded_file() -> Path:
    return max(recorded_files(), key=lambda p: p.stat().st_size)


def recorded_file(name: str) -> Path:
    """`name` from the recorded files, or the largest one when this clone lacks it."""
    path = recorded_directory() / name
    return path if path.exists() else largest_recorded_file()
