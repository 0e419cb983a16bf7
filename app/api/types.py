"""Field types shared by the response models: how a decimal and a moment look on the wire."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from app.domain.numbers import decimal_text
from app.domain.times import iso

__all__ = ["ApiModel", "DecimalText", "UtcTime"]


class ApiModel(BaseModel):
    """Every request and response model: its validator is built on first use, so a worker
    does not build a hundred and fifty of them at start-up for routes it may never serve."""

    model_config = ConfigDict(defer_build=True)

DecimalText = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?\d+(\.\d*[1-9])?$",
            "description": "a decimal number as plain text: no exponent, no trailing zeros",
            "examples": ["1", "0", "53847.5779108037"],
        },
        mode="serialization",
    ),
]
"""Money, prices and amounts: exact decimal text ("1", "0.00003003"), never a float."""

UtcTime = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-12-02T11:30:00Z"]},
        mode="serialization",
    ),
]
"""A moment as ISO 8601 UTC text with `Z`."""
