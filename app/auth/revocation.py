"""Revoked access tokens. The accounts feature fills this in (Redis with a database fallback)."""

from __future__ import annotations

from typing import Any


def is_token_revoked(header: dict[str, Any], payload: dict[str, Any]) -> bool:
    """True when the token's `jti` was revoked (logout, family revocation)."""
    return False
