"""Command-line interface of the hub (`govshare ...`); each sub-app lives in its own module."""
