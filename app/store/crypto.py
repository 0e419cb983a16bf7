"""Encryption at rest for exchange credentials: Fernet under `ENCRYPTION_KEY`.

`ENCRYPTION_KEY` may list several keys, comma-separated, newest first (`MultiFernet`): new
values are encrypted under the first, any listed key decrypts, and `rotate` re-encrypts a value
under the first. Errors never carry a key, a plaintext or a ciphertext.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.errors import AppError, ServiceUnavailable
from config import get_settings


class EncryptionMisconfigured(ServiceUnavailable):
    code = "encryption_misconfigured"


class DecryptionFailed(AppError):
    """A stored value that no configured key opens (a key was removed too early)."""

    status = 500
    code = "credentials_unreadable"


UNREADABLE = "stored credentials cannot be decrypted with any key in ENCRYPTION_KEY"


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise EncryptionMisconfigured("ENCRYPTION_KEY holds no key")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise EncryptionMisconfigured(
                f"ENCRYPTION_KEY entry #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


def cipher() -> MultiFernet:
    return _cipher(tuple(get_settings().effective_encryption_keys))


def encrypt_json(data: dict[str, Any]) -> str:
    return cipher().encrypt(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")


def decrypt_json(token: str) -> dict[str, Any]:
    try:
        plain = cipher().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionFailed(UNREADABLE) from None
    value = json.loads(plain)
    assert isinstance(value, dict)
    return value


def rotate(token: str) -> str:
    """The same plaintext, encrypted under the newest key."""
    try:
        return cipher().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionFailed(UNREADABLE) from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


@dataclass(frozen=True)
class CredentialSecrets:
    """Decrypted credentials, for signing exchange requests only. The repr hides them."""

    api_key: str
    secret: str
    passphrase: str | None = None
    uid: str | None = None

    def __repr__(self) -> str:
        return "CredentialSecrets(<hidden>)"


def decrypt_credential(ciphertext: str) -> CredentialSecrets:
    """The secrets of one stored exchange credential (the row's `ciphertext`)."""
    bundle = decrypt_json(ciphertext)
    return CredentialSecrets(
        api_key=bundle["api_key"],
        secret=bundle["secret"],
        passphrase=bundle.get("passphrase"),
        uid=bundle.get("uid"),
    )
