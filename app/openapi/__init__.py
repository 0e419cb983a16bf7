"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they declare."""

from app.openapi.generator import build_openapi

__all__ = ["build_openapi"]
