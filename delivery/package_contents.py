"""What a decrypted offline package may hold (离线包内容检查), checked before anything is written.

The tar inside a package is the hub's own work, and its signature says so; but a signature proves who sealed
it, not that what was sealed is sane (a hub whose signing key or export was abused signs whatever it is given).
So the consumer unpacks nothing it cannot account for: the tar is read as a plain tar (never decompressed: a
few signed kilobytes of gzip could unpack to gigabytes), every member must be a regular, non-sparse file under a
plain relative path (no absolute path, no `..`, no link of either kind), and the members must be exactly
package.json, manifest.json and the data files package.json lists. Only then are the files copied out, one by
one, by this code rather than by tarfile's extraction.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from delivery.packages import PackageRefused

MAX_MEMBERS = 1000  # a package holds package.json, manifest.json and its data files
FIXED = ("package.json", "manifest.json")


def hostile(zh: str, en: str) -> PackageRefused:
    """A refusal of content the hub signed: the consumer asks for a new package and tells the hub's operators."""
    return PackageRefused(f"{zh}；该包带有平台的有效签名，请报告共享交换平台运维人员并重新索取，拒绝导入",
                          f"{en}; the package carries the hub's valid signature, so report it to the hub's operators "
                          "and ask for a new package; refused")


def unpack_members(tar_path: Path, out: Path) -> dict[str, Any]:
    """Copy the package's files into `out` once every member checks out; package.json's content."""
    try:
        with tarfile.open(tar_path, "r:") as tar:  # "r:" = no compression, ever
            members = tar.getmembers()[:MAX_MEMBERS + 1]
            if len(members) > MAX_MEMBERS:
                raise hostile(f"离线包的文件数超过 {MAX_MEMBERS} 个", f"the package holds more than {MAX_MEMBERS} "
                              "members")
            by_name = {_checked(member): member for member in members}
            if len(by_name) != len(members):
                raise hostile("离线包中有重名的文件", "the package holds two members of the same name")
            package_json = _package_json(tar, by_name.get("package.json"))
            listed = {_safe_name(entry["path"]) for entry in package_json["files"]}
            for name in sorted(set(by_name) - listed - set(FIXED)):
                raise hostile(f"离线包含有 package.json 未列出的文件 {name}",
                              f"the package holds {name!r}, which its package.json does not list")
            for name in sorted(listed | set(FIXED)):
                if name not in by_name:
                    raise hostile(f"离线包缺少文件 {name}", f"the package lacks {name!r}, which it must hold")
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(by_name[name]) as source, target.open("xb") as sink:
                    shutil.copyfileobj(source, sink)
    except tarfile.TarError as exc:
        raise hostile("离线包的内容不是普通 tar 文件（被压缩或已损坏）",
                      f"the package's content is not a plain tar (compressed or damaged: {exc})") from None
    return package_json


def _safe_name(name: Any) -> str:
    path = PurePosixPath(name) if isinstance(name, str) else None
    if path is None or not name or path.is_absolute() or "\\" in name or any(p in ("..", ".") for p in path.parts) \
            or str(path) != name:
        raise hostile(f"离线包含有不安全的文件路径 {name!r}（绝对路径或含 ..）",
                      f"the package holds a member with an unsafe path {name!r} (absolute or with ..)")
    return name


def _checked(member: tarfile.TarInfo) -> str:
    name = _safe_name(member.name)
    if member.issym() or member.islnk():
        raise hostile(f"离线包含有链接 {name}（离线包只应包含普通文件）",
                      f"the package holds a link {name!r} (to {member.linkname!r}); a package holds plain files only")
    if not member.isreg() or member.issparse():
        raise hostile(f"离线包中的 {name} 不是普通文件（如稀疏文件、目录或设备）",
                      f"the package member {name!r} is not a plain file (sparse, a folder or a device)")
    return name


def _package_json(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> dict[str, Any]:
    try:
        if member is None:
            raise ValueError("missing")
        with tar.extractfile(member) as handle:
            content = json.loads(handle.read())
        if not isinstance(content, dict) or not isinstance(content.get("files"), list) \
                or not all(isinstance(e, dict) and "path" in e for e in content["files"]):
            raise ValueError("no list of files")
    except ValueError:
        raise hostile("离线包缺少可读的 package.json", "the package has no readable package.json") from None
    return content
