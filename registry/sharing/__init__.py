"""Sharing (共享): subscriptions, grants, applications and their form, disputes, secrecy agreements and the check that every live grant has a basis."""

# Whatever writes a grant imports this package: the grant seal's hooks are then installed, so every grant the hub
# writes is sealed without a service having to remember it (registry/sharing/grant_seal.py).
import registry.sharing.grant_seal  # noqa: E402,F401
