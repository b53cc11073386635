"""Sources: connections to agencies' business databases. Secrets are encrypted; connections open lazily."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import Connector
from connectors.kinds import connector_class
from core.crypto import decrypt, encrypt
from core.errors import ConfigError, NotFound
from core.settings import get_settings
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.catalog.models import Source
from registry.people.agencies import get_agency

SECRET_NAMES = {"password", "token", "private_key", "passphrase", "secret"}


def add_source(
    session: Session,
    *,
    name: str,
    agency: str,
    kind: str,
    config: dict[str, Any],
    secret: dict[str, Any] | None = None,
    actor: str = "cli",
) -> Source:
    checked_name(name, what_zh="数据源名称", what_en="a source name")
    cls = connector_class(kind)  # an unknown kind fails here, not at the first run
    cls.validate_config(config)
    if session.scalar(select(Source).where(Source.name == name)):
        raise ConfigError(f"a source named {name!r} already exists; pick another name")
    owner = get_agency(session, ref=agency)
    sealed = encrypt(json.dumps(secret), secret_key=get_settings().require_secret()) if secret else None
    source = Source(name=name, agency_id=owner.id, kind=kind, config=config, secret_encrypted=sealed)
    session.add(source)
    session.flush()
    # The audit detail names the secret's fields, never their values.
    record_event(session, actor=actor, action="source.add", agency_code=owner.code,
                 detail={"source": name, "kind": kind, "config": config, "secret_fields": sorted(secret or {})})
    return source


def edit_source(session: Session, *, name: str, config: dict[str, Any] | None = None,
                unset: list[str] | None = None, secret: dict[str, Any] | None = None, actor: str = "cli") -> Source:
    """Change a source's settings (``config`` set, ``unset`` removed) and replace fields of its secret (a
    rotated password or token, a new key); the resources it feeds keep it. Audited with the settings changed
    and the names of the secret fields replaced, never their values."""
    source = get_source(session, name=name)
    if secretive := sorted(k for k in config or {} if k.lower() in SECRET_NAMES):
        raise ConfigError(f"{', '.join(secretive)} is a secret: pass it with --password-env, --token-env or "
                          "--key-file, never as a setting (settings are shown and audited)")
    settings = dict(source.config)
    unknown = [key for key in unset or [] if key not in settings]
    if unknown:
        raise ConfigError(f"source {name!r} has no setting(s) {', '.join(unknown)} to remove; it has "
                          f"{', '.join(sorted(settings)) or 'none'}")
    for key in unset or []:
        settings.pop(key)
    settings.update(config or {})
    connector_class(source.kind).validate_config(settings)  # a setting the kind needs cannot be removed
    changed = sorted(k for k in set(settings) | set(source.config) if settings.get(k) != source.config.get(k))
    source.config = settings
    if secret:
        current = json.loads(decrypt(source.secret_encrypted, secret_key=get_settings().require_secret())) \
            if source.secret_encrypted else {}
        source.secret_encrypted = encrypt(json.dumps({**current, **secret}), secret_key=get_settings().require_secret())
    if not changed and not secret:
        raise ConfigError(f"nothing to change on source {name!r}: give -o KEY=VALUE, --unset KEY or a secret")
    record_event(session, actor=actor, action="source.edit", agency_code=source.agency.code,
                 detail={"source": name, "changed": {k: settings.get(k) for k in changed},
                         "secret_fields": sorted(secret or {})})
    return source


def get_source(session: Session, *, name: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        raise NotFound(f"no source {name!r}; `govshare source list` shows the registered ones")
    return source


def list_sources(session: Session) -> list[Source]:
    return list(session.scalars(select(Source).order_by(Source.name)))


def open_connector(source: Source) -> Connector:
    """The connector for a source; the secret is decrypted now, and no connection opens until it is used."""
    secret = {}
    if source.secret_encrypted:
        secret = json.loads(decrypt(source.secret_encrypted, secret_key=get_settings().require_secret()))
    return connector_class(source.kind)(name=source.name, config=dict(source.config), secret=secret)
