"""The dashboard: server-rendered pages under `/` that call the JSON API from a little
JavaScript, with every asset shipped in the package (`static/vendor/README.md`)."""

from __future__ import annotations

from flask import Flask

from app.web import pages, security


def init_app(app: Flask) -> None:
    security.init_app(app)
    pages.init_app(app)
