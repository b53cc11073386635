"""Offline packages (离线交换包) that arrive again: one made before packages carried a signed expiry, a fresh
package of the same data as one imported before (a re-delivery, idempotent), and the ledger's boundary (the
installation whose ledger it is, shared by naming one file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery_helpers import Delivery
from tests.test_delivery_offline import _app, _import, _keys, hub, runner  # noqa: F401 - the shared hub fixture
from tests.test_package_hostile import Genuine, _ledger

pytestmark = pytest.mark.usefixtures("storage_backend")


def _export(hub: Delivery, out: Path, *, since: int | None = None) -> Path:  # noqa: F811
    made = runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", hub.hub.consumer_code,
                                  "--out", str(out), *(["--since", str(since)] if since is not None else [])])
    assert made.exit_code == 0, made.output
    return out


def test_a_package_made_before_packages_expired_is_refused_saying_to_ask_for_a_new_one(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """A package without a signed expiry (made before packages carried one) was imported silently: a copy kept
    back could be handed in for ever, and in any installation whose ledger had not seen it. It is refused,
    saying how to get one that is accepted."""
    genuine = Genuine(hub, tmp_path)
    old = genuine.forge("before-expiry", genuine.members(), drop=("expires_at",))
    refused = _import(old, genuine.key, genuine.hub_pem, genuine.consumer, tmp_path / "in")
    assert refused.exit_code == 3, refused.output
    assert "no signed expiry" in refused.output and "ask the sender to export a new package" in refused.output
    assert "有效期" in refused.output and "重新" in refused.output
    assert not (tmp_path / "in").exists()
    assert [e["event"] for e in _ledger(hub_home)] == ["refused"]


def test_a_fresh_package_of_the_same_data_is_a_redelivery_that_changes_nothing(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """A fresh package of a version already imported (the hub exported it again) was unpacked again into a new
    folder, unremarked, so the consumer's loader took the same data twice. The same data (consumer, resource,
    version, changes-since and manifest digest alike) now changes nothing and says where it went the first
    time; the very same file handed in twice is still refused as a replay; other data of that version (its
    changes, where the first was the whole) is imported."""
    from pipeline.sync import sync_resource
    from tests.helpers import sqlite_execute

    consumer = hub.hub.consumer_code
    first, again = _export(hub, tmp_path / "v1.gspkg"), _export(hub, tmp_path / "v1-again.gspkg")
    key, hub_pem = _keys(tmp_path, consumer)
    assert _import(first, key, hub_pem, consumer, tmp_path / "in1").exit_code == 0

    redelivered = _import(again, key, hub_pem, consumer, tmp_path / "in1-again")
    assert redelivered.exit_code == 0, redelivered.output
    assert "nothing changed" in redelivered.output and "未再导入" in redelivered.output
    assert "in1" in redelivered.output  # where the same data went the first time
    assert not (tmp_path / "in1-again").exists()
    replayed = _import(first, key, hub_pem, consumer, tmp_path / "replay")
    assert replayed.exit_code == 3 and "already imported" in replayed.output

    sqlite_execute(hub.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=hub.hub.resource_code, full=True)
    assert _import(_export(hub, tmp_path / "v2-changes.gspkg", since=1), key, hub_pem, consumer,
                   tmp_path / "in2-changes").exit_code == 0
    whole = _import(_export(hub, tmp_path / "v2.gspkg"), key, hub_pem, consumer, tmp_path / "in2")
    assert whole.exit_code == 0 and "nothing changed" not in whole.output
    assert (tmp_path / "in2" / "data" / "part-00000.parquet").exists()
    assert [(e["event"], e["version"]) for e in _ledger(hub_home)] == [
        ("imported", 1), ("unchanged", 1), ("refused", 1), ("imported", 2), ("imported", 2)]


def test_the_ledger_is_the_installations_and_shared_by_naming_one_file(
        hub: Delivery, hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The record that refuses a replay lives in GOVSHARE_HOME: a second installation on the same machine has
    its own. The import names the record it checked and wrote, and two installations that name one file with
    --ledger refuse each other's replays."""
    from core.settings import reset_settings

    consumer = hub.hub.consumer_code
    package = _export(hub, tmp_path / "v1.gspkg")
    key, hub_pem = _keys(tmp_path, consumer)
    shared = tmp_path / "machine" / "received-packages.jsonl"
    done = runner.invoke(_app(), ["package", "import", str(package), "--as", consumer, "--key", str(key),
                                  "--hub-key", str(hub_pem), "--out", str(tmp_path / "in"), "--ledger", str(shared)])
    assert done.exit_code == 0, done.output
    assert str(shared) in done.output.replace("\n", "")  # the record this import counts against

    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path / "second-home"))
    reset_settings()
    again = runner.invoke(_app(), ["package", "import", str(package), "--as", consumer, "--key", str(key),
                                   "--hub-key", str(hub_pem), "--out", str(tmp_path / "again"), "--ledger",
                                   str(shared)])
    assert again.exit_code == 3 and "already imported" in again.output
    assert not (tmp_path / "again").exists()
    own = _import(package, key, hub_pem, consumer, tmp_path / "own")  # the second home's own record: not seen
    assert own.exit_code == 0 and "second-home" in own.output.replace("\n", "")


def test_a_torn_or_damaged_ledger_line_is_told_not_an_internal_error(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """One line of the ledger that was not JSON (the last one torn by a crash while it was written, or an edit
    by hand) made every later import fail with an internal error. A torn last line is passed over and the next
    line starts afresh; a damaged line elsewhere is named, with what to do."""
    consumer = hub.hub.consumer_code
    first, again = _export(hub, tmp_path / "v1.gspkg"), _export(hub, tmp_path / "v1-again.gspkg")
    key, hub_pem = _keys(tmp_path, consumer)
    assert _import(first, key, hub_pem, consumer, tmp_path / "in1").exit_code == 0
    ledger = hub_home / "received-packages.jsonl"
    with ledger.open("a") as handle:
        handle.write('{"at": "2026-')  # a crash part-way through the next line
    redelivered = _import(again, key, hub_pem, consumer, tmp_path / "in1-again")
    assert redelivered.exit_code == 0 and "nothing changed" in redelivered.output, redelivered.output
    assert [(e["event"], e.get("text")) for e in _ledger(hub_home)] == [
        ("imported", None), ("torn", '{"at": "2026-'), ("unchanged", None)]  # the fragment kept, as a line

    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    damaged = _import(again, key, hub_pem, consumer, tmp_path / "in1-third")
    assert damaged.exit_code == 1, damaged.output
    assert str(ledger) in damaged.output.replace("\n", "") and "line 2" in damaged.output
    assert not (tmp_path / "in1-third").exists()
