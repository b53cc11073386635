"""People (用户) of agencies with their roles; passwords hashed with scrypt; login with a rate limit.

Password hashes are ``scrypt$N$r$p$salt$hash`` (hashlib.scrypt, standard library: no extra dependency), so the
cost can be raised later and old hashes still verify. After MAX_FAILURES failed logins in a row an account is
locked for LOCK_MINUTES; an unknown username costs the same hashing time as a known one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.crypto import sha256_hex
from core.errors import AccessDenied, AuthenticationFailed, ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import mark_audited, record_event
from registry.people.agencies import get_agency
from registry.people.auth import OVERSIGHT_ROLES, PEOPLE_ROLES, SESSION_PREFIX, Principal, require
from registry.people.models import User, UserSession
from registry.people.roles import PLATFORM_ROLES, ROLES
from registry.seals import edited, intact

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_MINUTES = 15
SESSION_HOURS = 8


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=2**26, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=2**26, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters (密码至少{MIN_PASSWORD}位)")


def _check_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise ConfigError(f"give at least one role: {', '.join(ROLES)}")
    if bad := [r for r in roles if r not in ROLES]:
        raise ConfigError(f"unknown role(s) {bad}; roles are {', '.join(f'{k} ({v})' for k, v in ROLES.items())}")
    return sorted(set(roles))


def add_user(session: Session, *, username: str, agency: str, roles: list[str], password: str,
             display_name: str = "", by: Principal) -> User:
    owner = get_agency(session, ref=agency)
    roles = _check_roles(roles)
    require(by, may_manage_agency(by, owner.id), zh="只有本机构管理员可以添加本机构用户（平台运维不代表任何机构）",
            en="only the agency's own administrator may add its users (the platform operator acts for no agency)")
    _check_platform_roles(by, roles)
    _check_password_rules(password)
    checked_name(username, what_zh="用户名", what_en="a username")
    checked_name(display_name, what_zh="姓名", what_en="a display name")
    if session.scalar(select(User).where(User.username == username)):
        raise ConfigError(f"user {username!r} already exists")
    user = User(username=username, display_name=display_name, agency_id=owner.id, roles=roles,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    record_event(session, actor=by.actor, action="user.add", agency_code=owner.code,
                 detail={"username": username, "roles": roles})
    return user


def get_user(session: Session, *, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}; `govshare user list` shows them")
    return user


def may_manage_agency(by: Principal, agency_id: int) -> bool:
    """The agency's own administrator, or the server's console (which creates the first one)."""
    return by.kind == "console" or by.acts_for(agency_id, roles=PEOPLE_ROLES)


def _check_platform_roles(by: Principal, roles: list[str]) -> None:
    # Cross-agency roles are set up from the server's console, never by an agency or the operator.
    require(by, by.kind == "console" or not (set(roles) & PLATFORM_ROLES),
            zh="跨机构角色只能在平台控制台授予", en="cross-agency roles are granted only from the platform's console")


def _may_manage(by: Principal, user: User) -> bool:
    return may_manage_agency(by, user.agency_id)


def set_roles(session: Session, *, username: str, roles: list[str], by: Principal) -> User:
    user = get_user(session, username=username)
    roles = _check_roles(roles)
    require(by, _may_manage(by, user), zh="无权管理该用户", en="you may not manage this user")
    _check_platform_roles(by, roles)
    user.roles = roles
    record_event(session, actor=by.actor, action="user.roles", agency_code=user.agency.code,
                 detail={"username": username, "roles": roles})
    return user


def set_password(session: Session, *, username: str, password: str, by: Principal) -> None:
    user = get_user(session, username=username)
    require(by, _may_manage(by, user) or by.user_id == user.id, zh="无权修改该用户密码",
            en="you may not change this user's password")
    _check_password_rules(password)
    user.password_hash, user.failed_logins, user.locked_until = hash_password(password), 0, None
    record_event(session, actor=by.actor, action="user.password", agency_code=user.agency.code,
                 detail={"username": username})


def deactivate_user(session: Session, *, username: str, by: Principal) -> None:
    user = get_user(session, username=username)
    require(by, _may_manage(by, user), zh="无权管理该用户", en="you may not manage this user")
    user.active = False
    for open_session in session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                                  UserSession.revoked_at.is_(None))):
        open_session.revoked_at = clock.now()
    record_event(session, actor=by.actor, action="user.deactivate", agency_code=user.agency.code,
                 detail={"username": username})


def list_users(session: Session, *, by: Principal) -> list[User]:
    users = list(session.scalars(select(User).order_by(User.username)))
    return users if by.has(*OVERSIGHT_ROLES) else [u for u in users if u.agency_id == by.agency_id]


def login(session: Session, *, username: str, password: str, source: str = "api") -> str:
    """A session token (shown once) for a person, or AuthenticationFailed. Every attempt is audited and
    committed by the caller, including failures (rate limiting relies on them being kept)."""
    user = session.scalar(select(User).where(User.username == username))
    now = clock.now()

    def fail(zh: str, en: str, **detail: object) -> AuthenticationFailed:
        record_event(session, actor=f"user:{username}", action="user.login", result="denied",
                     agency_code=user.agency.code if user else None, detail={"source": source, "reason": en, **detail})
        return mark_audited(AuthenticationFailed(zh, en))

    if user is None:
        verify_password(password, _dummy_hash())
        # an unknown name is answered like a known one (tries left, then "locked"), so the answer does not tell
        # whether the account exists: its tries are counted from the audit trail's recent refusals
        failures = _recent_failures(session, username=username, since=now - timedelta(minutes=LOCK_MINUTES))
        if len(failures) >= MAX_FAILURES:
            raise fail(*_locked(clock.as_utc(failures[-MAX_FAILURES]) + timedelta(minutes=LOCK_MINUTES) - now), locked=True)
        raise fail(*_wrong(MAX_FAILURES - len(failures) - 1))
    if not intact(user):
        # its agency, roles, password or lockout set outside the hub: nothing in it is believed, and every
        # password gets this answer, so a lockout cleared by an UPDATE gives a guesser no sign of the right one
        verify_password(password, _dummy_hash())  # as long as any other answer takes; the edited hash unread
        raise fail(*edited(zh="用户账户", en=f"user account {username!r}"), edited=True)
    if user.locked_until is not None and clock.as_utc(user.locked_until) > now:
        raise fail(*_locked(clock.as_utc(user.locked_until) - now), locked=True)
    if not verify_password(password, user.password_hash) or not user.active:
        user.failed_logins += 1
        left = MAX_FAILURES - user.failed_logins
        if left <= 0:
            user.locked_until, user.failed_logins = now + timedelta(minutes=LOCK_MINUTES), 0
        raise fail(*_wrong(left))
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user.id, token_sha256=sha256_hex(token),
                            expires_at=now + timedelta(hours=SESSION_HOURS)))
    record_event(session, actor=f"user:{username}", action="user.login", agency_code=user.agency.code,
                 detail={"source": source})
    return token


def _wrong(left: int) -> tuple[str, str]:
    """The answer to a wrong password: how many tries are left before the account locks."""
    if left > 0:
        return (f"用户名或密码错误。还可尝试{left}次，连续失败{MAX_FAILURES}次账户将锁定{LOCK_MINUTES}分钟",
                f"wrong username or password: {left} tries left before the account locks for {LOCK_MINUTES} minutes")
    return (f"用户名或密码错误。已连续失败{MAX_FAILURES}次，账户锁定{LOCK_MINUTES}分钟，请稍后再试或联系本机构管理员重置密码",
            f"wrong username or password: {MAX_FAILURES} failures in a row, the account is locked for "
            f"{LOCK_MINUTES} minutes")


def _locked(remaining: timedelta) -> tuple[str, str]:
    minutes = max(1, int(remaining.total_seconds() // 60) + 1)
    return (f"登录失败次数过多，账户已锁定，请{minutes}分钟后再试",
            f"too many failed logins: try again in {minutes} minutes")


def _recent_failures(session: Session, *, username: str, since: datetime) -> list[datetime]:
    """When this name's refused logins happened since `since`, oldest first (from the audit trail)."""
    from registry.audit.models import AuditEvent

    return list(session.scalars(select(AuditEvent.at).where(
        AuditEvent.action == "user.login", AuditEvent.actor == f"user:{username}", AuditEvent.result == "denied",
        AuditEvent.at >= since.replace(tzinfo=None)).order_by(AuditEvent.id)))


def logout(session: Session, *, token: str, source: str = "api") -> None:
    """End a person's session (over the API or on the pages: `source`), audited as its person."""
    record = session.scalar(select(UserSession).where(UserSession.token_sha256 == sha256_hex(token)))
    if record is None or record.revoked_at is not None:
        raise AccessDenied("会话不存在或已注销", "no such session, or already logged out")
    record.revoked_at = clock.now()
    record_event(session, actor=f"user:{record.user.username}", action="user.logout",
                 agency_code=record.user.agency.code, detail={"source": source})
