"""The API fuzzed from its own OpenAPI document with schemathesis (bounded examples, in-process over ASGI,
against a real registry with a published world): no input makes a server error, and no operation answers 200
to a caller without credentials (the signed-link route and login included: a made-up link or password never
passes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.sharing_world import World, small_world

FUZZ = settings(max_examples=6, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One migrated SQLite registry with the sharing world, for the whole module (the fuzzer calls ~60 routes)."""
    from registry.migrate import upgrade
    from tests.conftest import _reset_caches

    with pytest.MonkeyPatch.context() as patch:
        base = tmp_path_factory.mktemp("fuzz")
        patch.setenv("GOVSHARE_HOME", str(base / "var"))
        patch.setenv("GOVSHARE_DEMO", "1")
        for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_STORAGE", "GOVSHARE_SECRET_KEY"):
            patch.delenv(name, raising=False)
        patch.setattr("registry.people.users.SCRYPT_N", 2**10)
        _reset_caches()
        upgrade()
        yield small_world(base, rows=40, seed=29)
        _reset_caches()


def _operations():  # noqa: ANN202 - schemathesis operations
    from api.app import create_app

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # every route of the API is in its document
    return operations


def _fuzz(operation, check) -> None:  # noqa: ANN001 - schemathesis APIOperation, callable(Case)
    # Hypothesis drives each operation's strategy directly (schemathesis' own pytest plugin does not run under
    # this pytest); the bounded settings keep the whole run inside the CI time.
    @FUZZ
    @given(case=operation.as_strategy())
    def run(case) -> None:  # noqa: ANN001 - schemathesis Case
        check(case)

    run()


def test_no_input_makes_a_server_error(fuzz_world: World) -> None:
    tokens = [fuzz_world.tokens["consumer:data_admin"], fuzz_world.tokens["system:consumer"]]

    def check(case) -> None:  # noqa: ANN001 - schemathesis Case
        for token in tokens:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])

    for operation in _operations():
        _fuzz(operation, check)


def test_nothing_answers_200_without_credentials(fuzz_world: World) -> None:
    def check(case) -> None:  # noqa: ANN001 - schemathesis Case
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call()
        assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
        assert response.status_code != 200, (case.method, case.formatted_path, response.text[:300])

    for operation in _operations():
        _fuzz(operation, check)
