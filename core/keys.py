"""Every key the hub derives from its secret (GOVSHARE_SECRET_KEY), one purpose each (按用途派生密钥).

The secret itself is never used as a key: each use asks `derive_key(purpose=...)` for a key bound to that
purpose, so a value signed or sealed for one purpose is refused for any other, and the placeholder secret is
refused for every purpose (outside demo mode) with one clear message naming the variable to set.

A purpose with a `context` (a consumer agency's offline-package key) is derived with HKDF (RFC 5869), the
purpose as salt and the context as info; without one, as HMAC-SHA256(secret, "govshare:<purpose>:v1"). The
labels are those the hub has always used, so stored credentials, issued links and the audit log's seals stay
valid.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

# The row seals' purposes (registry/seals.py) are one per sealed table.
Purpose = Literal["credentials", "signed-links", "audit-seal", "offline-package", "grant-seal", "page-cursor",
                  "token-seal", "user-seal", "session-seal", "designation-seal", "resource-seal"]
PURPOSES: tuple[Purpose, ...] = ("credentials", "signed-links", "audit-seal", "offline-package", "grant-seal",
                                 "page-cursor", "token-seal", "user-seal", "session-seal", "designation-seal",
                                 "resource-seal")


def _label(purpose: str) -> bytes:
    if purpose not in PURPOSES:
        from core.errors import ConfigError

        raise ConfigError(f"未知的密钥用途 {purpose!r} / unknown key purpose {purpose!r}; "
                          f"one of {', '.join(PURPOSES)}")
    return f"govshare:{purpose}:v1".encode()


def derive_key(*, purpose: Purpose, context: str | None = None, secret: str | None = None) -> bytes:
    """The 32-byte key of one purpose (and context), derived from the settings' secret, or from ``secret`` (a
    key being checked or rotated). Refuses the placeholder secret (ConfigError naming GOVSHARE_SECRET_KEY)."""
    label = _label(purpose)
    if secret is None:
        from core.settings import get_settings

        secret = get_settings().require_secret()
    if context is None:
        return hmac.new(secret.encode(), label, hashlib.sha256).digest()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=label, info=context.encode()).derive(secret.encode())


def sign(message: bytes, *, purpose: Purpose) -> bytes:
    """HMAC-SHA256 of ``message`` with the purpose's key."""
    return hmac.new(derive_key(purpose=purpose), message, hashlib.sha256).digest()


def verify(message: bytes, signature: bytes, *, purpose: Purpose) -> bool:
    """Whether ``signature`` was made by `sign` for this purpose (compared in constant time)."""
    return hmac.compare_digest(sign(message, purpose=purpose), signature)
