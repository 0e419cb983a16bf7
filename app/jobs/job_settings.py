"""Settings of the jobs and analysis features, read before config.py has fields for them.

`job_setting("job_stale_seconds", 60.0)` reads the Settings field once the lead adds it, else
the environment variable of the same name (upper case, so child processes started by tests and
operators can set it today), else the default. The value is cast to the default's type.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T", int, float, str)


def job_setting(name: str, default: T) -> T:
    from config import get_settings

    value: Any = getattr(get_settings(), name, None)
    if value is None:
        value = os.environ.get(name.upper())
    if value is None or value == "":
        return default
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        return default


def lease_seconds() -> float:
    return job_setting("job_lease_seconds", 60.0)


def heartbeat_seconds() -> float:
    return job_setting("job_heartbeat_seconds", 5.0)


def stale_seconds() -> float:
    return job_setting("job_stale_seconds", 60.0)


def max_attempts() -> int:
    return job_setting("job_max_attempts", 3)


def retry_backoff_seconds() -> float:
    return job_setting("job_retry_backoff_seconds", 5.0)


def analysis_retention_days() -> float:
    return job_setting("analysis_retention_days", 30.0)


def patterns_dir() -> str:
    from config import BASE_DIR

    return job_setting("patterns_dir", str(BASE_DIR / "patterns"))
