"""Exceptions grouped by how they are handled; each message says what to do next.

- ConfigError: wrong settings or arguments; fix the configuration, retrying will not help.
- RetriableError: a transient fault (network, lock, busy peer); the same call may succeed later.
- FatalError: the run cannot go on (broken contract, incompatible schema); an operator must act.
- RowError: one row or value is bad; it is quarantined with its reason, the run goes on.
- AccessDenied: the caller may not do this; the message says why in Chinese and English.
"""

from __future__ import annotations


class GovshareError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(GovshareError):
    pass


class NotFound(ConfigError):
    pass


class RetriableError(GovshareError):
    pass


class FatalError(GovshareError):
    pass


class RowError(GovshareError):
    def __init__(self, message: str, *, rule: str = "", row: dict | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.row = row or {}


class AccessDenied(GovshareError):
    """Known caller, refused (HTTP 403)."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en


class AuthenticationFailed(AccessDenied):
    """Unknown caller: no, wrong, expired or revoked credential (HTTP 401)."""
