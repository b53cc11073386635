"""The exchange pipeline: extract, validate, stage, publish atomically, notify."""
