"""Schemas every operation shares: the one error envelope."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    """One problem with the request (a pydantic error, or a named field of the request)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where: body/query/path/header, then the field path")
    msg: str
    type: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. validation_error")
    message: str = Field(description="Human-readable explanation")
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = Field(description="Also in the X-Request-ID response header")


class ErrorEnvelope(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorBody
