"""Tradewind: a self-hosted, multi-user trading-bot backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from config import Settings


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app. Opens no connection and starts no thread: the engine is created
    lazily on first use and background work starts only in `app.lifecycle`."""
    from flask import Flask
    from flask_cors import CORS

    from app import api, cli, web
    from app.observability.logging import configure_logging
    from app.store.db import init_database
    from config import settings_or_exit, use_settings, warn_insecure_defaults

    settings = use_settings(config) if config is not None else settings_or_exit()
    configure_logging(settings)
    warn_insecure_defaults(settings)

    app = Flask(__name__, instance_path=None)
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
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    init_database(settings)
    api.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    return app
