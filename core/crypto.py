"""Symmetric encryption of secrets at rest (source passwords), keyed by GOVSHARE_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from core.errors import ConfigError
from core.keys import derive_key


def _fernet(secret_key: str) -> Fernet:
    # A purpose-bound key (core.keys), so the same secret key signing links never doubles as this key.
    return Fernet(base64.urlsafe_b64encode(derive_key(purpose="credentials", secret=secret_key)))


def encrypt(plaintext: str, *, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(token: str, *, secret_key: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ConfigError(
            "a stored credential cannot be decrypted: GOVSHARE_SECRET_KEY differs from the key it was "
            "stored with; restore the old key or store the credential again (`govshare source add ... --replace`)"
        ) from exc


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()
