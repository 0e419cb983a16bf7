"""Layering rules that keep Tradewind easy to change (DESIGN.md, rules 3 and 4)."""

from __future__ import annotations

import subprocess

from tests.support.processes import ROOT, VENV_BIN

LOWER_LAYERS = ["app.domain", "app.engine", "app.services", "app.store", "app.market"]


def _run(code: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "APP_ENV": "development"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_lower_layers_do_not_import_flask() -> None:
    code = (
        "import pkgutil, importlib, sys\n"
        f"for pkg in {LOWER_LAYERS!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.')))\n"
    )
    assert _run(code) == "[]"


def test_importing_wsgi_connects_nothing_and_skips_ccxt() -> None:
    code = (
        "import threading, sys\n"
        "before = threading.active_count()\n"
        "import wsgi\n"
        "from app.store import db\n"
        "pool = db.get_engine().pool\n"
        "print('ccxt' in sys.modules, threading.active_count() - before, pool.checkedout(),"
        " pool.checkedin())\n"
    )
    assert _run(code) == "False 0 0 0"
