"""`GET /openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (interactive docs).

The document is generated once per process from the registered routes and their models.
The docs page runs Swagger UI from the copy shipped with the dashboard's assets, so it works
without network access. Both are public: they describe the API, they expose no data.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, url_for

from app.openapi import build_openapi

bp = Blueprint("docs", __name__)

SWAGGER_UI_VERSION = "5.35.0"  # vendored under app/web/static/vendor/swagger-ui
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Tradewind API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{css}">
</head>
<body>
  <main id="swagger-ui" data-url="/openapi.json"></main>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""
# Swagger UI sets inline style attributes in its markup; scripts stay same-origin only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def openapi_document() -> dict[str, Any]:
    """The app's document, built on first use (routes never change after start-up)."""
    cached = current_app.extensions.get("tradewind_openapi")
    if cached is None:
        cached = current_app.extensions["tradewind_openapi"] = build_openapi(current_app)
    return cached


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 description of every route."""
    return jsonify(openapi_document())


openapi_json._tw_openapi = {  # type: ignore[attr-defined]
    "responses": {
        "200": {
            "description": "OpenAPI 3.1 document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
}


@bp.get("/docs")
def docs_page() -> Response:
    """Interactive API documentation (Swagger UI)."""
    page = _PAGE.format(
        css=url_for("web.static", filename="vendor/swagger-ui/swagger-ui.css"),
        bundle=url_for("web.static", filename="vendor/swagger-ui/swagger-ui-bundle.js"),
        init=url_for("web.static", filename="js/docs.js"),
    )
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DOCS_CSP})


docs_page._tw_openapi = {  # type: ignore[attr-defined]
    "responses": {
        "200": {
            "description": "HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    }
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
