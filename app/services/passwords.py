"""Password hashing with argon2id, and the password policy.

Parameters come from settings (ARGON2_TIME_COST, ARGON2_MEMORY_COST, ARGON2_PARALLELISM);
a stored hash made with other parameters is re-hashed at the next successful login, so raising
the cost upgrades every account that logs in. Pure Python: no Flask, safe for services.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from config import get_settings

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024


def _parameters() -> tuple[int, int, int]:
    """Read at each use, so new settings apply without a restart (tests pick cheap ones)."""
    settings = get_settings()
    return settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def hasher() -> PasswordHasher:
    return _hasher_for(*_parameters())


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches. An unusable or malformed hash never matches."""
    try:
        return hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return hasher().check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


_dummy_lock = threading.Lock()
_dummy: dict[tuple[int, int, int], str] = {}


def burn_verification_time(password: str) -> None:
    """Spend what a real verification costs, so an unknown email cannot be told apart from a
    wrong password by the response time."""
    params = _parameters()
    with _dummy_lock:
        if params not in _dummy:
            _dummy[params] = _hasher_for(*params).hash("tradewind-dummy-password")
    verify_password(_dummy[params], password)


def password_problem(password: str, email: str | None) -> str | None:
    """Why this password is refused, or None when it meets the policy."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"password must be at least {PASSWORD_MIN_LENGTH} characters"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"password must be at most {PASSWORD_MAX_LENGTH} characters"
    if email and password.strip().lower() == email.strip().lower():
        return "password must not be the email address"
    return None
