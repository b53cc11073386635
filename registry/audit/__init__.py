"""The sealed, hash-chained audit log (审计日志): recording events and refusals, verifying the chain."""
