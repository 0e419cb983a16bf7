"""Logging: JSON lines in production (one object per line), readable text in development.

Every record carries the request id (and user, bot, job ids where known) from `log_context` /
`bind_log_context`, plus anything a registered context provider knows (the HTTP layer
registers one that reads the signed-in user), plus the `extra=` fields of the call, so a
decision can be logged as `log.info("trade skipped", extra={"reason": "negative_edge"})`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config import Settings

CONTEXT_FIELDS = ("request_id", "user_id", "bot_id", "job_id")
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "tradewind_log_context",
    default={},  # noqa: B039 (never mutated in place)
)
_providers: list[Callable[[], dict[str, Any]]] = []


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


def current_log_context() -> dict[str, Any]:
    return dict(_context.get())


def add_context_provider(provider: Callable[[], dict[str, Any]]) -> None:
    """Register a function asked for extra ids on every record (idempotent per function)."""
    if provider not in _providers:
        _providers.append(provider)


class ContextFilter(logging.Filter):
    """Copies the bound ids (and providers' ids) onto each record without overriding extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = dict(_context.get())
        for provider in _providers:
            try:
                for key, value in provider().items():
                    fields.setdefault(key, value)
            except Exception:  # a provider must never lose a log line
                continue
        for key, value in fields.items():
            if value is not None and getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The non-standard attributes of a record: context ids first, then `extra=` fields."""
    extras: dict[str, Any] = {}
    for key in CONTEXT_FIELDS:
        value = getattr(record, key, None)
        if value is not None:
            extras[key] = value
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and key not in extras and not key.startswith("_"):
            extras[key] = value
    return extras


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=... reason=...]` for a terminal."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={v}" for k, v in record_extras(record).items())
        base = super().format(record)
        return f"{base} [{ids}]" if ids else base


def log_format(settings: Settings | None = None) -> str:
    """`json` or `text`: LOG_FORMAT when set, else JSON in production and text otherwise."""
    if settings is not None:
        return settings.log_format or ("json" if settings.is_production else "text")
    fmt = os.environ.get("LOG_FORMAT", "").strip().lower()
    if fmt in ("json", "text"):
        return fmt
    return "json" if os.environ.get("APP_ENV", "").lower() == "production" else "text"


def build_formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(settings: Settings) -> None:
    """Install one stream handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tradewind", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._tradewind = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(build_formatter(log_format(settings)))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in ("apscheduler", "urllib3", "ccxt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
