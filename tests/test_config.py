"""Configuration: production refuses weak secrets with one clear line; URLs are normalised."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime

import pytest

from config import ConfigError, Settings, load_settings
from tests.support.processes import ROOT, VENV_BIN

STRONG = "x" * 40


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"encryption_key": "k"}, "JWT_SECRET_KEY"),
        ({"jwt_secret_key": "short", "encryption_key": "k"}, "JWT_SECRET_KEY"),
        ({"jwt_secret_key": STRONG}, "ENCRYPTION_KEY"),
    ],
)
def test_production_refuses_weak_or_missing_secrets(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(app_env="production", **env)


def test_production_accepts_strong_secrets() -> None:
    settings = load_settings(app_env="production", jwt_secret_key=STRONG, encryption_key="k")
    assert settings.is_production


def test_postgres_scheme_is_normalised() -> None:
    settings = load_settings(database_url="postgres://u:p@db.example:5432/app")
    assert settings.database_url == "postgresql+psycopg2://u:p@db.example:5432/app"


def test_development_defaults_are_flagged_insecure() -> None:
    settings = load_settings(app_env="development", jwt_secret_key="", encryption_key="")
    assert settings.insecure_defaults_in_use() == ["JWT_SECRET_KEY", "ENCRYPTION_KEY"]


def test_production_start_exits_non_zero_naming_the_variable() -> None:
    env = {
        "APP_ENV": "production",
        "JWT_SECRET_KEY": "too-short",
        "ENCRYPTION_KEY": "k",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "JWT_SECRET_KEY" in lines[0]
    assert "Traceback" not in proc.stderr


def test_replay_anchor_first_start_is_kept_in_the_instance_folder(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import config
    from app.market.replay_clock import parse_anchor

    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path)
    before = datetime.now(UTC).timestamp() * 1000
    first = load_settings(replay_anchor="first-start").replay_anchor
    assert (tmp_path / "replay_anchor").read_text().strip() == first
    assert before - 1000 <= parse_anchor(first) <= datetime.now(UTC).timestamp() * 1000
    # every later process (and restart) agrees on the same anchor
    assert load_settings(replay_anchor="first-start").replay_anchor == first
    assert load_settings(replay_anchor="2026-01-01T00:00:00Z").replay_anchor.startswith("2026")
    assert [p.name for p in tmp_path.iterdir()] == ["replay_anchor"]  # no scratch file left


def test_env_example_lists_every_setting() -> None:
    """`.env.example` is where a person finds the knobs: every setting is in it (set, or
    commented out with its default), and it names none that does not exist."""
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert not sorted(settings - listed), f".env.example lacks {sorted(settings - listed)}"
    # besides the settings: what gunicorn.conf.py, the CLI and the metrics server read
    others = {
        "ACCESS_LOG", "FORWARDED_ALLOW_IPS", "METRICS_ADDR", "METRICS_PORT",
        "PROMETHEUS_MULTIPROC_DIR", "TRADEWIND_ADMIN_PASSWORD",
    }  # fmt: skip
    assert listed - settings <= others, sorted(listed - settings - others)
