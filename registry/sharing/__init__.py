"""Sharing (共享): subscriptions, grants, applications and their form, disputes, secrecy agreements and the check that every live grant has a basis."""
