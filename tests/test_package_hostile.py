"""Offline packages (离线交换包) as an attacker or a careless courier would hand them in: a truncated file, and
packages that carry the hub's genuine signature over hostile content (a hub whose key or export was abused:
paths with `..` or absolute, links, a sparse or compressed member that unpacks far past its size, members its
package.json does not list). Each is refused in Chinese and English saying what to do, leaves nothing behind,
and is written to the consumer's ledger."""

from __future__ import annotations

import base64
import io
import json
import secrets
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.delivery_helpers import Delivery
from tests.test_delivery_offline import _app, _import, _keys, hub, runner  # noqa: F401 - the shared hub fixture
from tests.test_full_disk import small_disk  # noqa: F401 - a 3 MB tmpfs (root; skips without)

pytestmark = pytest.mark.usefixtures("storage_backend")

Member = tuple[tarfile.TarInfo, bytes]


def _file(name: str, body: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info, body


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _sparse(name: str, claimed: int) -> Member:
    """A member of 16 bytes on the medium that unpacks to `claimed` bytes (a PAX sparse map)."""
    info, body = _file(name, b"x" * 16)
    info.pax_headers = {"GNU.sparse.map": "0,16", "GNU.sparse.size": str(claimed)}
    return info, body


class Genuine:
    """A genuine package for the consumer, its signed header and unpacked files, and what forging needs."""

    def __init__(self, hub: Delivery, tmp_path: Path) -> None:  # noqa: F811
        from delivery.package_import import _read_header, decode_key, import_package

        self.tmp, self.consumer = tmp_path, hub.hub.consumer_code
        self.package = tmp_path / "genuine.gspkg"
        made = runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", self.consumer,
                                      "--out", str(self.package)])
        assert made.exit_code == 0, made.output
        self.key, self.hub_pem = _keys(tmp_path, self.consumer)
        folder = tmp_path / "genuine"
        import_package(package=self.package, key=decode_key(self.key.read_text()),
                       hub_public_key=self.hub_pem.read_bytes(), agency=self.consumer, out=folder,
                       ledger=tmp_path / "scratch-ledger.jsonl")  # the consumer's own ledger stays empty
        with self.package.open("rb") as handle:
            self.header = _read_header(handle)[0]
        self.files = {name: (folder / name).read_bytes()
                      for name in ("package.json", "manifest.json", "data/part-00000.parquet")}

    def members(self) -> list[Member]:
        return [_file(name, body) for name, body in self.files.items()]

    def forge(self, name: str, members: list[Member], *, mode: str = "w", drop: tuple[str, ...] = (),
              **header) -> Path:
        """A package of these tar members, sealed and signed with the hub's own key (without the header's
        `drop` fields)."""
        from delivery.packages import _seal, hub_private_key, sha256_file

        tar_path = self.tmp / f"{name}.tar"
        with tarfile.open(tar_path, mode, format=tarfile.PAX_FORMAT) as tar:
            for info, body in members:
                tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
        out = self.tmp / f"{name}.gspkg"
        sealed = {**self.header, "tar_sha256": sha256_file(tar_path),
                  "nonce_prefix": base64.b64encode(secrets.token_bytes(8)).decode(), **header}
        _seal(tar_path, out, signer=hub_private_key(), header={k: v for k, v in sealed.items() if k not in drop})
        return out


def _ledger(home: Path) -> list[dict]:
    path = home / "received-packages.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _without(genuine: Genuine, name: str) -> list[Member]:
    return [m for m in genuine.members() if m[0].name != name]


def _tampered_manifest(genuine: Genuine) -> list[Member]:
    manifest = genuine.files["manifest.json"].replace(b'"rows"', b'"rowz"', 1)
    return [*_without(genuine, "manifest.json"), _file("manifest.json", manifest)]


HOSTILE: dict[str, tuple[Callable[[Genuine], list[Member]], str, str]] = {
    # case: (the members, what the English message says, what the Chinese says)
    "parent-path": (lambda g: [*g.members(), _file("../escape.txt", b"owned")], "unsafe path", "不安全"),
    "absolute-path": (lambda g: [*g.members(), _file(str(g.tmp / "absolute.txt"), b"owned")],
                      "unsafe path", "不安全"),
    "symlink-out": (lambda g: [*_without(g, "data/part-00000.parquet"),
                               _link("data/part-00000.parquet", "/etc/passwd")], "link", "链接"),
    "symlink-inside": (lambda g: [*g.members(), _link("data/extra.parquet", "../package.json")], "link", "链接"),
    "hardlink": (lambda g: [*g.members(), _link("data/extra.parquet", "package.json", tarfile.LNKTYPE)],
                 "link", "链接"),
    "sparse-huge": (lambda g: [*g.members(), _sparse("data/part-00001.parquet", 1 << 40)],
                    "not a plain file", "普通文件"),
    "unlisted": (lambda g: [*g.members(), _file("data/run.sh", b"#!/bin/sh\n")], "does not list", "未列出"),
    "no-package-json": (lambda g: _without(g, "package.json"), "package.json", "package.json"),
    "bad-package-json": (lambda g: [*_without(g, "package.json"), _file("package.json", b"{not json")],
                         "package.json", "package.json"),
    "manifest": (_tampered_manifest, "manifest does not match", "清单"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_signed_package_with_hostile_content_is_refused_and_leaves_nothing(
        hub: Delivery, hub_home: Path, tmp_path: Path, case: str) -> None:  # noqa: F811
    """Import unpacked whatever the tar held: a member its package.json does not list (a script, a link, a
    1 TiB sparse file) landed in the consumer's folder unchecked, and a path, link or unreadable package.json
    the tar filter refuses failed with an internal error, not a refusal, and was missing from the ledger."""
    genuine = Genuine(hub, tmp_path)
    members, english, chinese = HOSTILE[case]
    forged = genuine.forge(case, members(genuine))
    out = tmp_path / "in"
    refused = _import(forged, genuine.key, genuine.hub_pem, genuine.consumer, out)
    assert refused.exit_code == 3, refused.output
    assert english in refused.output and chinese in refused.output
    assert "operators" in refused.output  # it carries the hub's signature: the hub must hear of it
    assert not out.exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "absolute.txt").exists()
    assert [(e["event"], e["version"]) for e in _ledger(hub_home)] == [("refused", genuine.header["version"])]
    assert english in _ledger(hub_home)[0]["reason"]


def test_a_compressed_tar_is_not_unpacked(hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """The tar inside was opened with compression detected, so a signed package of a few kilobytes could hold a
    gzip stream that unpacks to gigabytes (a zip bomb) before any check ran. A package holds a plain tar."""
    genuine = Genuine(hub, tmp_path)
    bomb = genuine.forge("bomb", [*genuine.members(), _file("data/zeros.bin", bytes(32 << 20))], mode="w:gz")
    assert bomb.stat().st_size < 1 << 20
    refused = _import(bomb, genuine.key, genuine.hub_pem, genuine.consumer, tmp_path / "in")
    assert refused.exit_code == 3, refused.output
    assert "not a plain tar" in refused.output and "tar" in refused.output
    assert not (tmp_path / "in").exists()
    assert _ledger(hub_home)[0]["event"] == "refused"


@pytest.mark.parametrize("cut", [1000, 70, "all-but-10"])
def test_a_truncated_package_says_to_copy_it_again(hub: Delivery, hub_home: Path, tmp_path: Path,  # noqa: F811
                                                   cut: int | str) -> None:
    """A package cut off (an interrupted copy to or from the medium) was refused as 'altered or not made by the
    trusted hub', which sends the consumer chasing an attack; it now says the file is incomplete, copy it again."""
    genuine = Genuine(hub, tmp_path)
    body = genuine.package.read_bytes()
    short = tmp_path / "short.gspkg"
    short.write_bytes(body[:10] if cut == "all-but-10" else body[:-int(cut)])
    refused = _import(short, genuine.key, genuine.hub_pem, genuine.consumer, tmp_path / "in")
    assert refused.exit_code == 3, refused.output
    assert "incomplete" in refused.output and "copy it again" in refused.output and "不完整" in refused.output
    assert not (tmp_path / "in").exists()
    assert _ledger(hub_home)[0]["event"] == "refused"


def test_a_package_signed_for_another_agency_is_refused(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """A package the hub sealed for agency B, handed to A with B's header rewritten to A: the signature fails;
    sealed for A under B's key (the header says A): the key check fails. Neither unpacks."""
    from delivery.packages import consumer_key

    genuine = Genuine(hub, tmp_path)
    other = "113100000024220133"
    rewritten = bytearray(genuine.package.read_bytes())
    start = rewritten.find(genuine.consumer.encode())
    rewritten[start:start + len(other)] = other.encode()
    (tmp_path / "rewritten.gspkg").write_bytes(bytes(rewritten))
    (tmp_path / "b.key").write_text(base64.b64encode(consumer_key(other)).decode())
    refused = _import(tmp_path / "rewritten.gspkg", tmp_path / "b.key", genuine.hub_pem, other, tmp_path / "in")
    assert refused.exit_code == 3 and "signature check failed" in refused.output
    assert not (tmp_path / "in").exists()


def test_a_hub_key_file_that_is_not_a_public_key_is_told(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """--hub-key naming the wrong file (the agency's own key, a text file) failed as an internal error; it now
    says which file to give."""
    genuine = Genuine(hub, tmp_path)
    wrong = _import(genuine.package, genuine.key, genuine.key, genuine.consumer, tmp_path / "in")
    assert wrong.exit_code == 1, wrong.output
    assert "hub-key" in wrong.output and "not the hub's public key" in wrong.output
    assert not (tmp_path / "in").exists()


@pytest.mark.parametrize("field", ["nonce_prefix", "nonce_prefix length", "version", "expires_at", "tar_sha256"])
def test_a_malformed_field_in_the_signed_header_is_refused(
        hub: Delivery, hub_home: Path, tmp_path: Path, field: str) -> None:  # noqa: F811
    """A signed header whose nonce_prefix was not base64 (or not the 8 bytes of a nonce's prefix), or whose
    version, expiry or digest was not of its kind, ended as an internal error, not a refusal."""
    genuine = Genuine(hub, tmp_path)
    bad = {"nonce_prefix": {"nonce_prefix": "not base64 at all!"},
           "nonce_prefix length": {"nonce_prefix": base64.b64encode(b"abc").decode()},
           "version": {"version": "v3"}, "expires_at": {"expires_at": "next tuesday"},
           "tar_sha256": {"tar_sha256": 42}}[field]
    with pytest.MonkeyPatch.context() as patch:
        # The hub's sealing reads the prefix it writes: a header with a malformed one is sealed under a good one.
        decode = base64.b64decode
        patch.setattr(base64, "b64decode", lambda text, *a, **k: decode(text) if text != bad.get(
            "nonce_prefix") else secrets.token_bytes(8))
        forged = genuine.forge(field.replace(" ", "-"), genuine.members(), **bad)
    refused = _import(forged, genuine.key, genuine.hub_pem, genuine.consumer, tmp_path / "in")
    assert refused.exit_code == 3, refused.output
    assert "internal error" not in refused.output and field.split()[0] in refused.output, refused.output
    assert "头部" in refused.output and "operators" in refused.output, refused.output
    assert not (tmp_path / "in").exists()
    assert [e["event"] for e in _ledger(hub_home)] == ["refused"]


def test_an_out_that_is_an_existing_file_says_to_name_a_folder(
        hub: Delivery, hub_home: Path, tmp_path: Path) -> None:  # noqa: F811
    """--out naming a file already there failed as "file or network error: Not a directory"."""
    genuine = Genuine(hub, tmp_path)
    taken = tmp_path / "in.txt"
    taken.write_text("the consumer's own notes")
    told = _import(genuine.package, genuine.key, genuine.hub_pem, genuine.consumer, taken)
    assert told.exit_code == 1, told.output
    flat = " ".join(told.output.split())
    assert "--out" in flat and "已有的文件" in flat and "new folder" in flat, told.output
    assert "file or network error" not in flat, told.output
    assert taken.read_text() == "the consumer's own notes"


def test_an_import_onto_a_full_disk_says_to_free_space_or_unpack_elsewhere(
        hub: Delivery, hub_home: Path, tmp_path: Path, small_disk: Path) -> None:  # noqa: F811
    """A disk that fills while unpacking told the GOVSHARE_STORAGE and housekeep advice of the hub's own
    storage, which the consumer's folder is not."""
    import os

    genuine = Genuine(hub, tmp_path)
    free = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(bytes(free.f_bavail * free.f_frsize - 8192))
    out = small_disk / "in"
    told = _import(genuine.package, genuine.key, genuine.hub_pem, genuine.consumer, out)
    assert told.exit_code == 2, told.output
    flat = " ".join(told.output.split())
    assert "空间不足" in flat and "--out" in flat and "free space" in flat, told.output
    assert "housekeep" not in flat and "GOVSHARE_STORAGE" not in flat, told.output
    assert not out.exists()
    assert _ledger(hub_home) == []  # nothing was wrong with the package: no refusal recorded
