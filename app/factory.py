"""The app factory: the Flask app with its blueprints, error handlers and commands.

The HTTP layer (`app.api`, `app.web`: every route, the dashboard and what they import) is
looked up by name and left out of a `flask` command that serves no request
(`app.cli.HTTP_FREE_COMMANDS`): `flask backtest` starts without it.
"""

from __future__ import annotations

import importlib

from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app import cli
from app.cli import needs_secrets, serves_http
from app.observability.logging import configure_logging
from app.store.db import init_database
from config import Settings, settings_or_exit, use_settings, warn_insecure_defaults

HTTP_LAYERS = ("app.api", "app.web")  # in this order: the dashboard's pages come last


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app. Opens no connection and starts no thread: the engine is created
    lazily on first use and background work starts only in `app.lifecycle`."""
    settings = use_settings(config) if config is not None else settings_or_exit()
    configure_logging(settings)
    if needs_secrets():
        warn_insecure_defaults(settings)

    app = Flask("app", instance_path=None)  # the package, as when this lived in app/__init__
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
        TESTING=settings.app_env == "test",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    CORS(
        app,
        resources={r"/api/*": {"origins": settings.cors_origin_list}},
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    if settings.trusted_proxy_count:
        # Behind nginx or a PaaS edge: the client's address and scheme, not the proxy's
        # (per-IP rate limits and audit entries depend on it).
        hops = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    init_database(settings)
    if serves_http():
        for layer in HTTP_LAYERS:
            importlib.import_module(layer).init_app(app)
    cli.init_app(app)
    return app
