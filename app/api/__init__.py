"""The HTTP layer: each feature module exposes `init_app(app)`, called in this order."""

from __future__ import annotations

import importlib

from flask import Flask

FEATURE_MODULES = (
    "app.api.errors",
    "app.api.request_context",
    "app.api.jwt",
    "app.api.health",
    "app.api.auth",
    "app.api.admin",
    "app.api.credentials",
    "app.api.markets",
    "app.api.strategies",
    "app.api.bots",
    "app.api.backtests",
    "app.api.analysis",
    "app.api.safety",
    "app.api.realtime",
    "app.api.metrics",
    "app.api.docs",
)


def init_app(app: Flask) -> None:
    for name in FEATURE_MODULES:
        importlib.import_module(name).init_app(app)
