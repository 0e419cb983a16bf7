"""`GET /openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (interactive docs).

The document is generated once per process from the registered routes and their models.
The docs page loads Swagger UI from a public CDN (jsDelivr); the API itself serves no
JavaScript. Both are public: they describe the API, they expose no data.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from app.openapi import build_openapi

bp = Blueprint("docs", __name__)

SWAGGER_UI_VERSION = "5.17.14"
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tradewind API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@{v}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@{v}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui",
                                 persistAuthorization: true}});
  </script>
</body>
</html>
"""


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
    return Response(_PAGE.format(v=SWAGGER_UI_VERSION), mimetype="text/html")


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
