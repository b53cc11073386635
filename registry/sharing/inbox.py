"""The sharing inbox (消息): messages to an agency's data administrators or to a role (the coordination office).

Every workflow writes here through ``notify``; the grants module too (a consumer is told when its grant ends), so
it lives below both applications and grants.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import ConfigError
from registry.sharing.models import Application, InboxMessage
from schemas.presentation import labels


def notify(session: Session, *, kind: str, message: str, application: Application | None = None,
           agency_id: int | None = None, role: str | None = None) -> InboxMessage:
    """A message to an agency or a role. Its kind must have its Chinese label (schemas/labels.yaml inbox_kinds):
    staff read the label, so a new kind without one fails where it is written, not on a person's screen."""
    if kind not in labels("inbox_kinds"):
        raise ConfigError(f"消息类型 {kind} 没有中文标签 / inbox message kind {kind!r} has no label: add it to "
                          f"schemas/labels.yaml inbox_kinds")
    note = InboxMessage(agency_id=agency_id, role=role, kind=kind, message=message,
                        application_id=application.id if application else None)
    session.add(note)
    return note
