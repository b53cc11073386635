"""Shared foundations every layer may use: settings and the exception families."""
