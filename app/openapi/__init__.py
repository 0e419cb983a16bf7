"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they declare."""

from app.openapi.generator import answers, build_openapi

__all__ = ["answers", "build_openapi"]
