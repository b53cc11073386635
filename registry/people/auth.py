"""Who is asking (身份认证, article 18): a consumer system's API token or a person's session token, resolved to
one Principal with an agency and roles (registry/people/bearer.py), and the role checks every workflow action
makes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import AccessDenied, AuthenticationFailed
from registry.people.models import User
from registry.people.roles import ROLES, roles_that
from registry.seals import edited, intact

SESSION_PREFIX = "gsu_"
# From the declared role table (registry/people/roles.py): oversight roles see every agency's grants, applications and
# the audit log, but never data; data roles handle shared data for their agency (its systems hold API tokens).
OVERSIGHT_ROLES = roles_that("oversee")
DATA_ROLES = roles_that("read_data")
PEOPLE_ROLES = roles_that("manage_people")


@dataclass(frozen=True)
class Principal:
    kind: str  # "system" (API token), "user" (a person's session) or "console" (the local `govshare` CLI)
    name: str
    agency_id: int | None
    agency_code: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None
    display_name: str = ""  # a person's name as pages show it (张伟); the account name stays `name`
    agency_name: str = ""
    credential: str | None = None  # "token:ID" or "session:ID": what authenticated it (a signed link names it)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def has(self, *roles: str) -> bool:
        return self.kind == "console" or bool(self.roles & set(roles))

    def acts_for(self, agency_id: int, roles: Iterable[str] = DATA_ROLES) -> bool:
        """A person of this agency holding one of the roles; the console may act for anyone."""
        return self.kind == "console" or (self.agency_id == agency_id and self.kind == "user" and self.has(*roles))


def console(name: str = "cli") -> Principal:
    """The local administration console: whoever runs `govshare` on the server already holds the database."""
    return Principal(kind="console", name=name, agency_id=None, agency_code=None, roles=frozenset(ROLES))


def user_principal(user: User) -> Principal:
    """The person acting; a user row edited outside the hub (its agency, roles, password) acts as no one."""
    if not intact(user):
        raise AuthenticationFailed(*edited(zh="用户账户", en=f"user account {user.username!r}"))
    return Principal(kind="user", name=user.username, agency_id=user.agency_id, agency_code=user.agency.code,
                     roles=frozenset(user.roles), user_id=user.id, display_name=user.display_name or user.username,
                     agency_name=user.agency.name)


def require(principal: Principal, allowed: bool, *, zh: str, en: str) -> None:
    if not allowed:
        raise AccessDenied(f"{zh}（{principal.actor}）", f"{en} ({principal.actor})")


def require_person(principal: Principal, *, doing_zh: str, doing_en: str) -> None:
    """What the measures give to a person (a decision, a conclusion) is done by a signed-in person (or the console
    acting `--as` one), never by a system token or the bare console; that person is what is recorded."""
    require(principal, principal.kind == "user",
            zh=f"{doing_zh}须由本人登录办理（命令行请用 --as 指定账号）",
            en=f"{doing_en} must be done by a signed-in person (on the console: --as ACCOUNT)")


def require_roles(principal: Principal, *roles: str) -> None:
    names = "、".join(ROLES.get(r, r) for r in roles)
    require(principal, principal.has(*roles), zh=f"需要以下角色之一：{names}",
            en=f"this needs one of the roles: {', '.join(roles)}")
