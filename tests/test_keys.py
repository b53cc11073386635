"""Keys derived from the hub's secret: one per purpose, the placeholder refused for every one (the audit seal too)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import keys
from core.errors import AccessDenied, ConfigError

SECRET = "a-long-random-secret-for-the-key-tests"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_SECRET_KEY", SECRET)
    reset_settings()
    yield SECRET
    reset_settings()


def test_each_purpose_and_context_gets_its_own_key(secret: str) -> None:
    derived = {purpose: keys.derive_key(purpose=purpose) for purpose in keys.PURPOSES}
    assert len(set(derived.values())) == len(keys.PURPOSES)
    assert all(len(key) == 32 for key in derived.values())
    assert (keys.derive_key(purpose="offline-package", context="SH001")
            != keys.derive_key(purpose="offline-package", context="SH002"))
    # the labels the hub has always used: credentials stored and links issued before stay valid
    assert derived["signed-links"] == hmac.new(SECRET.encode(), b"govshare:signed-links:v1", hashlib.sha256).digest()
    assert keys.derive_key(purpose="audit-seal", secret="another-secret-of-enough-length") != derived["audit-seal"]
    with pytest.raises(ConfigError, match="unknown key purpose"):
        keys.derive_key(purpose="passwords")  # type: ignore[arg-type]


def test_a_value_signed_for_one_purpose_is_refused_for_another(secret: str) -> None:
    message = b'{"resource":"101001/0001"}'
    signature = keys.sign(message, purpose="audit-seal")
    assert keys.verify(message, signature, purpose="audit-seal")
    assert not keys.verify(message, signature, purpose="signed-links")

    from delivery import signed_links

    claims = signed_links.new_claims(agency="SH001", caller="system:SH001", resource="101001/0001", version=1,
                                     fmt="csv", since=None, grant="g", credential="token:1")
    token = signed_links.sign(claims)
    assert signed_links.verify(token) == claims
    body = token.partition(".")[0]
    forged = f"{body}.{signed_links._b64(keys.sign(body.encode(), purpose='audit-seal'))}"
    with pytest.raises(AccessDenied, match="signature does not match"):
        signed_links.verify(forged)


def test_the_secret_is_not_shown_with_the_settings(secret: str) -> None:
    from core.settings import get_settings

    settings = get_settings()
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.require_secret() == SECRET


def test_the_audit_seal_refuses_the_placeholder_secret(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings
    from registry.audit.log import record_event
    from registry.db import session_scope

    monkeypatch.delenv("GOVSHARE_DEMO")
    reset_settings()
    with (pytest.raises(ConfigError, match="GOVSHARE_SECRET_KEY is still the placeholder") as refused,
          session_scope() as session):
        record_event(session, actor="test", action="test.event")
    assert "GOVSHARE_SECRET_KEY" in refused.value.zh  # the Chinese text names the variable too

    from cli.main import app

    result = CliRunner().invoke(app, ["audit", "verify"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "GOVSHARE_SECRET_KEY is still the placeholder" in result.output
    assert "Traceback" not in result.output
