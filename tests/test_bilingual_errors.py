"""Every error a person may see speaks Chinese and English, says what to do, and declares its own data."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from typer.testing import CliRunner

from core.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    FatalError,
    GovshareError,
    NotFound,
    RetriableError,
    has_chinese,
    has_english,
)

ROOT = Path(__file__).parents[1]
PACKAGES = ("core", "connectors", "quality", "schemas", "pipeline", "registry", "delivery", "api", "cli")


def _every_error_class() -> set[type[GovshareError]]:
    for package in PACKAGES:
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    found, todo = set(), [GovshareError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in PACKAGES and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found | {GovshareError}


def test_every_error_class_says_what_to_do_in_both_languages() -> None:
    classes = _every_error_class()
    # the groups and the errors of the services that declare their own data
    assert {ConfigError, NotFound, RetriableError, FatalError, AccessDenied} <= classes
    assert len(classes) >= 12, sorted(c.__name__ for c in classes)
    for cls in classes:
        assert has_chinese(cls.zh_advice) and not has_english(cls.zh_advice), cls
        assert has_english(cls.en_advice) and not has_chinese(cls.en_advice), cls
        assert issubclass(cls, (ConfigError, RetriableError, FatalError, AccessDenied)) or cls is GovshareError, \
            f"{cls.__name__} belongs to no handling group"


def test_a_message_in_one_language_is_shown_in_both() -> None:
    english = ConfigError("folder /nope does not exist; create it first")
    assert has_chinese(english.user_message()) and "folder /nope does not exist" in english.user_message()
    chinese = RetriableError("源数据库繁忙")
    assert "源数据库繁忙" in chinese.user_message() and has_english(chinese.user_message())
    both = NotFound("没有资源 X / no resource X")
    assert both.user_message() == "没有资源 X / no resource X"
    denied = AccessDenied("未获授权", "no grant")
    assert (denied.zh, denied.en, denied.audited) == ("未获授权", "no grant", False)
    assert str(denied) == "未获授权 / no grant"


def test_errors_declare_their_data_in_the_constructor() -> None:
    """Fields are constructor parameters (or class attributes), never attached to a raised error afterwards and
    read back with getattr."""
    assert "audited" in inspect.signature(AccessDenied).parameters
    assert AccessDenied("拒绝", "refused", audited=True).audited is True
    revoked = AuthenticationFailed("访问令牌已吊销", "API token revoked", token_id=7, agency_code="SH001")
    assert (revoked.token_id, revoked.agency_code, revoked.audited) == (7, "SH001", False)
    ours = {cls.__name__ for cls in _every_error_class()}
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for handler in ast.walk(tree):
                if not (isinstance(handler, ast.ExceptHandler) and handler.name and handler.type is not None):
                    continue
                caught = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in ast.walk(handler.type)}
                if not caught & ours:
                    continue
                for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
                    read_back = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                                 and node.func.id in {"getattr", "hasattr"} and node.args
                                 and isinstance(node.args[0], ast.Name) and node.args[0].id == handler.name)
                    attached = (isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == handler.name
                        for t in node.targets))
                    if read_back or attached:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def test_the_command_line_answers_an_english_only_error_in_both_languages(hub_home: Path) -> None:
    from cli.main import app

    result = CliRunner().invoke(app, ["sync", "999999/0001"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert "no resource '999999/0001'" in result.output
    assert NotFound.zh_advice in result.output.replace("\n", ""), line
    assert "Traceback" not in result.output
