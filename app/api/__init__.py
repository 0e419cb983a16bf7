"""The HTTP layer: each feature module exposes `init_app(app)`, called in this order."""

from __future__ import annotations

import importlib

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from app.api.validation import DB_INT_MAX

FEATURE_MODULES = (
    "app.api.errors",
    "app.api.request_context",
    "app.api.jwt",
    "app.api.health",
    "app.api.auth",
    "app.api.sessions",
    "app.api.admin",
    "app.api.credentials",
    "app.api.markets",
    "app.api.strategies",
    "app.api.bots",
    "app.api.backtests",
    "app.api.searches",
    "app.api.bot_reports",
    "app.api.analysis",
    "app.api.downloads",
    "app.api.notifications",
    "app.api.signals",
    "app.api.safety",
    "app.api.realtime",
    "app.api.metrics",
    "app.api.docs",
)


class RowIdConverter(IntegerConverter):
    """`<int:...>` in a path: an id beyond a 64-bit column answers 404 for every method,
    rather than reaching the database (a plain `max` would make werkzeug answer 405 when a
    sibling rule with another method matched the same path first)."""

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > DB_INT_MAX:
            raise NotFound(f"no resource has the id {value[:30]}: ids go up to {DB_INT_MAX}")
        return number


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = RowIdConverter
    for name in FEATURE_MODULES:
        importlib.import_module(name).init_app(app)
