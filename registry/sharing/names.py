"""Who and what, as a person reads it: people by name with their account beside (李娜（li.na）), and a resource's
data items by their catalogue names (法定代表人身份证号码, not legal_rep_id).

Records keep the actor as the audit trail does (``user:li.na``, ``console:cli``, ``system:hr-sync``, or a
catalogue person's account); pages, the application form and the CLI translate it here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.models import Resource
from registry.people.models import Person, User
from schemas.presentation import label, named


def _split(actor: str) -> tuple[str, str]:
    """("user", "li.na") for user:li.na; ("", "scjg-li") for a catalogue person's bare account."""
    kind, sep, name = actor.partition(":")
    return (kind, name) if sep else ("", actor)


def actor_names(session: Session, actors: Iterable[str | None]) -> dict[str, str]:
    """{actor: how a person reads it} for every actor given, in two queries."""
    split = {actor: _split(actor) for actor in actors if actor}
    accounts = {name for kind, name in split.values() if kind in ("", "user")}
    users = {u.username: u for u in session.scalars(select(User).where(User.username.in_(accounts)))}
    people = {p.account: p for p in session.scalars(select(Person).where(Person.account.in_(accounts)))}
    shown: dict[str, str] = {}
    for actor, (kind, name) in split.items():
        if kind in ("", "user") and name in users:
            shown[actor] = named(users[name].display_name or name, name)
        elif kind in ("", "user") and name in people:
            shown[actor] = named(people[name].name, name)
        elif kind in ("console", "system"):
            shown[actor] = f"{label('actor_kinds', kind)}（{name}）"
        else:
            shown[actor] = name
    return shown


def actor_name(session: Session, actor: str | None) -> str:
    return actor_names(session, [actor]).get(actor or "", "")


def item_names(session: Session, resource: Resource) -> dict[str, str]:
    """{column: data item name} from the published catalogue revision; a column it does not name keeps the
    label its contract gave it in the latest version's schema, else its own name."""
    from registry.catalog.entries import published_revision
    from registry.exchange.versions import latest_version

    names: dict[str, str] = {}
    version = latest_version(session, resource=resource)
    for field in (version.manifest.get("schema", []) if version else []):
        if "name" in field:
            names[field["name"]] = field.get("label") or field["name"]
    revision = published_revision(session, resource=resource)
    for item in (revision.content.get("data_items", []) if revision else []):
        if item.get("column"):
            names[item["column"]] = item["name"]
    return names


def condition_text(row_filter: dict[str, Any] | None, names: dict[str, str]) -> str:
    """A grant's or application's row condition in words: 登记状态为以下之一：存续、在业."""
    if not row_filter:
        return "无（全部记录）"
    if "all" in row_filter:
        return "；并且".join(condition_text(part, names) for part in row_filter["all"])
    column, op = row_filter.get("column", ""), row_filter.get("op", "")
    value = "、".join(str(v) for v in row_filter["values"]) if "values" in row_filter else row_filter.get("value")
    return f"{names.get(column, column)}{label('row_filter_ops', op)}：{value}"
