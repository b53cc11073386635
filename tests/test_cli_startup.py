"""`govshare --help`, a group's help and a usage error answer at once (命令行启动): building the command line
loads no database layer, no Arrow, no web framework. Those load inside the commands that use them; a module
of cli/ that imports one at its top makes every `govshare` invocation pay for it (about a second, where the
command line itself needs a tenth). Checked on what a fresh process has loaded, never on a timing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, child_env

# What only the commands that work with data, the registry or the API may load.
HEAVY = ("sqlalchemy", "pyarrow", "pandas", "numpy", "fastapi", "uvicorn", "airflow", "pydantic_settings")

_LOADED_AFTER = """
import json, sys
sys.argv = ["govshare", *sys.argv[1:]]
from cli.main import main
if len(sys.argv) > 1:
    try:
        main()
    except SystemExit as done:
        status = done.code
    else:
        status = 0
else:
    status = None
print(json.dumps({"status": status, "loaded": sorted(m for m in HEAVY if m in sys.modules)}), file=sys.stderr)
"""


def _loaded_after(*args: str) -> dict:
    """Run the command line in a fresh process (only imported when no arguments) and say what it loaded."""
    code = f"HEAVY = {HEAVY!r}\n{_LOADED_AFTER}"
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env={**child_env(), "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    return json.loads(last)


def test_importing_the_command_line_loads_nothing_heavy() -> None:
    assert _loaded_after()["loaded"] == []


@pytest.mark.parametrize("args, status", [
    (("--help",), 0),
    (("agency", "--help"), 0),
    (("validate", "file", "--help"), 0),  # its --kind choices are known without the validators
    (("agency", "lst"), 2),  # a usage error: no such command
    (("calendar", "add", "2026-12-01"), 2),  # a usage error: missing argument
])
def test_help_and_usage_errors_load_nothing_heavy(args: tuple[str, ...], status: int) -> None:
    assert _loaded_after(*args) == {"status": status, "loaded": []}
