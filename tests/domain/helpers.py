"""Small candle builders shared by the domain tests (plain functions, no pytest fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.domain.candles import Candles

FIVE_MIN_MS = 300_000


def candles_from_close(close, *, spread: float = 0.01, t0: int = 1_700_000_000_000) -> Candles:
    c = np.asarray(close, dtype=np.float64)
    n = c.shape[0]
    prev = np.concatenate([c[:1], c[:-1]])
    return Candles(
        ts=t0 + FIVE_MIN_MS * np.arange(n, dtype=np.int64),
        open=prev,
        high=np.maximum(prev, c) * (1 + spread),
        low=np.minimum(prev, c) * (1 - spread),
        close=c,
        volume=np.ones(n),
    )


def random_walk(n: int, seed: int = 7, vol: float = 0.01, start: float = 100.0) -> Candles:
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    c = candles_from_close(close)
    wiggle = rng.uniform(0.0, vol, n)
    return Candles(c.ts, c.open, c.high * (1 + wiggle), c.low * (1 - wiggle), c.close, c.volume)


def load_csv(path: Path) -> Candles:
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return Candles(
        ts=data[:, 0].astype(np.int64),
        open=data[:, 1],
        high=data[:, 2],
        low=data[:, 3],
        close=data[:, 4],
        volume=data[:, 5],
    )
