"""govshare test suite."""
