"""What `flask backtest` imports: the backtest, not the HTTP layer, the bot use cases, the
tick or the document validators; `flask routes` (a command that is not HTTP-free) still sees
every route. Real processes, read with `python -X importtime`."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.support.processes import ROOT, VENV_BIN, service_env
from tests.support.recorded import largest_recorded_file

LEFT_OUT = ("app.api", "app.web", "app.services.bots", "app.engine.tick", "optuna", "redis",
            "cryptography")  # fmt: skip


def _imported(settings: Any, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    command = [str(VENV_BIN / "python"), "-X", "importtime", "-m", "flask", "--app", "wsgi",
               *args]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, env=service_env(settings), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    modules = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return proc, modules


def test_a_backtest_starts_without_the_http_layer(settings: Any) -> None:
    proc, modules = _imported(settings, "backtest", "--file", str(largest_recorded_file()),
                              "--stake", "0.1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trades" in proc.stdout
    assert {"app.services.backtests", "app.engine.scaled_ledger"} <= modules
    leaked = [m for m in modules if any(m == p or m.startswith(p + ".") for p in LEFT_OUT)]
    assert not leaked


def test_other_commands_still_build_the_whole_app(settings: Any) -> None:
    proc, modules = _imported(settings, "routes")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "/api/backtests" in proc.stdout
    assert {m.split(".")[1] for m in modules if m.startswith("app.")} >= {"api", "web"}
