"""Signed download links (签名下载链接): a URL that works without a credential until it expires.

The link carries who it was issued to (agency and caller), the resource, the version, the change range, the
format and a digest of the approved columns and row condition, with an expiry, all under an HMAC-SHA256 keyed
by a purpose-bound derivation of GOVSHARE_SECRET_KEY. Changing any part breaks the signature; a link used after
its grant was narrowed or revoked, or after the token or session that issued it was revoked, expired or signed
out, is refused, because the download re-checks both. A link issued before links named their credential no
longer verifies: ask for a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from core import clock, keys
from core.errors import AccessDenied
from core.settings import get_settings

VIA = "signed link"  # how the audit names a read (or refusal) that came through a link, not a credential


@dataclass(frozen=True)
class LinkClaims:
    agency: str  # the consumer agency's code
    caller: str  # the principal that asked for the link (audited on use)
    resource: str
    version: int
    fmt: str
    since: int | None
    grant: str  # digest of the approved columns, row condition and masking at issue time
    expires: int  # Unix seconds
    credential: str  # the token or session that issued it ("token:ID", "session:ID"): the link dies with it


def grant_digest(columns: list[str] | None, row_filter: dict | None, mask: list[str] | None) -> str:
    body = json.dumps({"c": columns, "r": row_filter, "m": sorted(mask or [])}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims) -> str:
    """An opaque token: the claims and their signature."""
    body = _b64(json.dumps(asdict(claims), sort_keys=True, separators=(",", ":")).encode())
    signature = _b64(keys.sign(body.encode(), purpose="signed-links"))
    return f"{body}.{signature}"


def verify(token: str, *, now: float | None = None) -> LinkClaims:
    """The claims of an untampered, unexpired link, or AccessDenied saying which it is."""
    body, _, signature = token.partition(".")
    expected = _b64(keys.sign(body.encode(), purpose="signed-links"))
    if not signature or not hmac.compare_digest(signature, expected):
        raise AccessDenied("下载链接无效（签名不符）", "invalid download link: the signature does not match")
    try:
        claims = LinkClaims(**json.loads(_unb64(body)))
    except (ValueError, TypeError) as exc:
        raise AccessDenied("下载链接无效", "invalid download link") from exc
    if claims.expires <= (now if now is not None else clock.now().timestamp()):
        raise AccessDenied("下载链接已过期，请重新获取", "download link expired: ask for a new one")
    return claims


def new_claims(*, agency: str, caller: str, resource: str, version: int, fmt: str, since: int | None,
               grant: str, credential: str, seconds: int | None = None) -> LinkClaims:
    lifetime = seconds or get_settings().signed_link_seconds
    return LinkClaims(agency=agency, caller=caller, resource=resource, version=version, fmt=fmt, since=since,
                      grant=grant, expires=int(clock.now().timestamp()) + lifetime, credential=credential)


def check_rate(session, claims: LinkClaims) -> None:  # noqa: ANN001 - a SQLAlchemy Session
    """The link's agency's rate limit; a link turned away is recorded as a refusal through the link (a leaked URL
    hammered shows in the audit), repeats within the interval counted, not written, so a flood costs no rows."""
    from delivery.ratelimit import RATE_LIMITED, RateLimited, limiter
    from registry.audit.log import record_event
    from registry.people.auth import Principal

    try:
        limiter().check(f"agency:{claims.agency}")
    except RateLimited:
        link = Principal(kind="link", name=claims.caller, agency_id=None, agency_code=claims.agency)
        if record_event(session, actor=link.actor, action="data.read", agency_code=claims.agency,
                        resource_code=claims.resource, result="denied", fold_repeats=True,
                        detail={"channel": "file", "via": VIA, "reason": RATE_LIMITED}) is not None:
            session.commit()
        raise


def authorize_link(session, claims: LinkClaims):
    """The link re-checked at download time as a request of the credential that issued it would be: that token
    or session still in force (a leaked token revoked, a person signed out: its links stop too), then the same
    access decision (a revoked, expired or narrowed grant stops the link)."""
    from core.errors import AuthenticationFailed
    from delivery.access import authorize_principal
    from delivery.agency_access import refuse
    from registry.people.auth import Principal
    from registry.people.bearer import credential_principal

    link = Principal(kind="link", name=claims.caller, agency_id=None, agency_code=claims.agency)
    try:
        issuer = credential_principal(session, credential=claims.credential)
        if issuer.agency_code != claims.agency:
            raise AuthenticationFailed("签发此链接的凭据已不属于该机构", "the credential that issued this link no longer "
                                       "belongs to its agency")
    except AuthenticationFailed as failed:
        denied = AccessDenied(f"签发此下载链接的令牌或会话已失效（{failed.zh}），链接作废，请重新获取",
                              f"the token or session that issued this signed link is no longer in force "
                              f"({failed.en}): ask for a new link")
        raise refuse(session, principal=link, resource_code=claims.resource, channel="file", error=denied,
                     reason=denied.en, via=VIA) from None
    decision = authorize_principal(session, principal=issuer, resource_code=claims.resource, channel="file",
                                   via=VIA)
    if grant_digest(decision.columns, decision.row_filter, decision.mask_columns) != claims.grant:
        denied = AccessDenied("共享授权已变更，此链接作废，请重新获取",
                              "the grant changed since this link was issued: ask for a new link")
        raise refuse(session, principal=link, resource_code=claims.resource, channel="file", error=denied,
                     reason=denied.en, via=VIA)
    return decision
