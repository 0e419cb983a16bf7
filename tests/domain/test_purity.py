"""The domain layer stays pure: importing it pulls in no web, database, network or upper layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "app.domain.indicators",
    "app.domain.strategies",
    "app.domain.sizing",
    "app.domain.metrics",
    "app.domain.analysis",
]
FORBIDDEN = [
    "flask",
    "sqlalchemy",
    "redis",
    "ccxt",
    "requests",
    "apscheduler",
    "app.api",
    "app.services",
    "app.store",
    "app.engine",
    "app.jobs",
    "app.market",
]


def test_domain_imports_nothing_from_above():
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
    assert "numpy" in loaded and "app.domain.strategies.sma_crossover" in loaded
