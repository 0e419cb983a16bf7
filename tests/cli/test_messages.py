"""What a person sees on the terminal: one warning line per process about development
secrets, none from a command that needs no secret; a command's error said once."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.support.processes import ROOT, flask_command, service_env

WARNING = "insecure development defaults"


def _env(settings: Any) -> dict[str, str]:
    env = service_env(settings)
    for name in ("JWT_SECRET_KEY", "ENCRYPTION_KEY"):
        env.pop(name, None)
    return env


def test_a_server_process_warns_once_in_one_line(settings: Any) -> None:
    script = "import wsgi; from app.factory import create_app; create_app()"
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_env(settings),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if WARNING in line]
    assert len(lines) == 1, run.stderr
    assert "JWT_SECRET_KEY" in lines[0] and "ENCRYPTION_KEY" in lines[0]


def test_a_command_without_secrets_is_quiet_and_says_its_error_once(settings: Any) -> None:
    args = ("backtest", "--symbol", "DOGE/BTC", "--timeframe", "5m", "--strategy", "sma_crossover")
    run = subprocess.run(
        flask_command(*args), cwd=ROOT, env=_env(settings),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert WARNING not in run.stderr and "not set" not in run.stderr, run.stderr
    assert run.stderr.count("DOGE/BTC") == 1, run.stderr
    assert "Error: unknown symbol 'DOGE/BTC'" in run.stderr
