"""The declared role table (角色与权限): who may do what on the platform, stated once.

Every check in the services reads these sets (registry/people/auth.py re-exports them), the access matrix test
(tests/test_access_matrix.py) is driven by this table over every route and channel, and README.md shows it.
A person holds roles within their own agency; a consumer system (API token) belongs to one agency and reads
only what its agency's grants allow. Platform roles see across agencies but read no data and act for no agency.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.presentation import label


@dataclass(frozen=True)
class Role:
    code: str
    scope: str  # "agency": acts within its own agency; "platform": oversees every agency, acts for none
    may: frozenset[str]
    article: str

    @property
    def label(self) -> str:
        """The role's Chinese name, from the one label table (schemas/labels.yaml)."""
        return label("roles", self.code)


# What a role may do; each word is checked somewhere (the module in brackets).
CAPABILITIES = {
    "read_data": "read shared data and its metadata under the agency's grants, or its own resources (delivery/access.py)",
    "manage_people": "add its own agency's users, set their roles, issue its own agency's API tokens (users.py, tokens.py)",
    "revoke_tokens": "revoke API tokens: its own agency's, or any token for the platform operator (tokens.py)",
    "request_sharing": "subscribe, apply, dispute for its own agency (subscriptions.py, applications.py, disputes.py)",
    "decide_sharing": "decide applications on its own agency's resources, record receipt and secrecy marks (applications.py)",
    "compile_catalogue": "compile and submit entries, when designated cataloguer on the day (catalog_review.py)",
    "review_catalogue": "confidentiality review, review decisions, withdrawal, when designated on the day (catalog_review.py)",
    "correct_receipts": "correct an application's wrongly recorded arrival day: on its own agency's resources, or "
                        "on any for the platform operator (applications.py)",
    "conclude_disputes": "conclude disputes (disputes.py)",
    "oversee": "see every agency's grants, applications and the audit log, never their data (grants.py, audit)",
    "read_evaluations": "read every agency's evaluation and violations (supervision)",
}

ROLE_TABLE: dict[str, Role] = {r.code: r for r in (
    Role("agency_admin", "agency", frozenset({"read_data", "manage_people", "revoke_tokens",
                                                          "request_sharing", "decide_sharing", "correct_receipts"}),
         "18, 21"),
    Role("data_admin", "agency", frozenset({"read_data", "request_sharing", "decide_sharing", "correct_receipts"}),
         "14, 21"),
    Role("cataloguer", "agency", frozenset({"compile_catalogue"}), "10"),
    Role("reviewer", "agency", frozenset({"review_catalogue"}), "10, 19"),
    Role("coordination_office", "platform", frozenset({"conclude_disputes", "oversee",
                                                                       "read_evaluations"}), "14, 22"),
    Role("supervisor", "platform", frozenset({"oversee", "read_evaluations"}), "22, 23"),
    Role("operator", "platform", frozenset({"revoke_tokens", "oversee", "correct_receipts"}), "18"),
)}
# A consumer system (API token of one agency): reads what its agency's grants allow, and docks its catalogue.
SYSTEM = Role("system", "agency", frozenset({"read_data"}), "15, 18")

ROLES = {code: role.label for code, role in ROLE_TABLE.items()}


def roles_that(capability: str) -> frozenset[str]:
    """The role codes holding a capability."""
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}; see registry/people/roles.py")
    return frozenset(code for code, role in ROLE_TABLE.items() if capability in role.may)


PLATFORM_ROLES = frozenset(code for code, role in ROLE_TABLE.items() if role.scope == "platform")
