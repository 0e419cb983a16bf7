"""Logging: JSON lines in production (one object per line), readable text in development.

Every record carries the request id (and user, bot, job ids where known) from `log_context`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config import Settings

CONTEXT_FIELDS = ("request_id", "user_id", "bot_id", "job_id")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "tradewind_log_context",
    default={},  # noqa: B039 (never mutated in place)
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ids to every log record emitted inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Attach ids for the rest of the current context (a request)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def clear_log_context() -> None:
    _context.set({})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None)
        )
        base = super().format(record)
        return f"{base} [{ids}]" if ids else base


def configure_logging(settings: Settings) -> None:
    """Install one stream handler on the root logger (idempotent)."""
    fmt = settings.log_format or ("json" if settings.is_production else "text")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tradewind", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._tradewind = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in ("apscheduler", "urllib3", "ccxt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
