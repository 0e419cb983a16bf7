"""Password hashing and policy."""

from __future__ import annotations

from argon2 import PasswordHasher

from app.services import passwords


def test_hash_is_argon2id_and_verifies(app) -> None:  # type: ignore[no-untyped-def]
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")


def test_unusable_and_malformed_hashes_never_match(app) -> None:  # type: ignore[no-untyped-def]
    assert not passwords.verify_password("!unusable", "anything at all")
    assert not passwords.verify_password("", "")
    assert passwords.needs_rehash("!unusable")


def test_hash_with_other_parameters_needs_rehash(app) -> None:  # type: ignore[no-untyped-def]
    old = PasswordHasher(time_cost=2, memory_cost=4096, parallelism=1).hash("pw-pw-pw-pw")
    assert passwords.verify_password(old, "pw-pw-pw-pw")
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(passwords.hash_password("pw-pw-pw-pw"))


def test_policy() -> None:
    assert passwords.password_problem("short", None) == "password must be at least 10 characters"
    assert "email" in passwords.password_problem("Alice@Example.com", "alice@example.com")  # type: ignore[operator]
    assert passwords.password_problem("x" * 1025, None) is not None
    assert passwords.password_problem("ten chars!", "a@b.co") is None
