"""An .xlsx file from outside checked before it is opened (工作簿包检查): a workbook is a zip package of XML parts,
and openpyxl unpacks and parses whatever it holds. A part that unpacks a thousand times larger than it is packed
(a zip bomb: 100 KB that is 100 MB of XML) cost a worker gigabytes of memory and minutes before a single row.
Real sheets pack 10-30 times; bombs pack by thousands. Both the catalogue import and the file sources call this.

Parsing errors are the other half: openpyxl lets ``xml.etree.ElementTree.ParseError`` through (an entity bomb,
which expat stops, or a damaged part), which is no error the hub foresaw. ``XML_ERRORS`` lists what a reader
catches to say so in one line. And openpyxl drops the ``x005F_`` of Excel's shared strings, so a typed
``_x0041_`` read as ``A``: ``keep_typed_escapes`` reads such strings again as written.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from core.errors import ConfigError

MAX_RATIO = 200  # unpacked / packed size of a large part
LARGE_PART = 1024 * 1024  # a small part may pack at any ratio: it costs nothing
MAX_MEMBERS = 500
XML_ERRORS = (ParseError, zipfile.BadZipFile, EOFError)
ESCAPED_UNDERSCORE = b"x005F_"  # what openpyxl drops from a shared string (keep_typed_escapes)
RESAVE = "请在 Excel 或 WPS 中打开后另存为 .xlsx / open it in Excel or WPS and save it as .xlsx again"


def check_package(path: str | Path, *, max_unpacked_bytes: int) -> None:
    """ConfigError (naming the file, saying what to do) unless the file is a zip package of a sane size."""
    path = Path(path)
    try:
        opened = zipfile.ZipFile(path)  # a file removed meanwhile: FileNotFoundError, which callers tell apart
    except (zipfile.BadZipFile, EOFError):
        raise ConfigError(f"{path.name} 不是 Excel 工作簿（.xlsx）/ not an .xlsx workbook (no zip package); "
                          f"{RESAVE}") from None
    with opened as package:
        members = package.infolist()
        if len(members) > MAX_MEMBERS or "[Content_Types].xml" not in package.namelist():
            raise ConfigError(f"{path.name} 不是 Excel 工作簿（.xlsx）/ not an .xlsx workbook; {RESAVE}")
        total = sum(m.file_size for m in members)
        swollen = [m for m in members
                   if m.file_size > LARGE_PART and m.file_size > MAX_RATIO * max(m.compress_size, 1)]
        if total > max_unpacked_bytes or swollen:
            part = f"{swollen[0].filename}: {swollen[0].file_size:,} bytes from {swollen[0].compress_size:,}" \
                if swollen else f"{total:,} bytes in all"
            raise ConfigError(f"{path.name} 解压后过大（{total // 1024 // 1024} MB），拒绝读取 / the workbook unpacks to "
                              f"an unreasonable size ({part}: a zip bomb?): refused, nothing read; {RESAVE}, or "
                              "export the data as CSV")


def xml_refusal(path: str | Path, exc: BaseException) -> ConfigError:
    """The error for a workbook whose XML cannot be parsed (damaged, or an entity bomb expat stopped)."""
    return ConfigError(f"{Path(path).name} 的内容无法解析 / the workbook's XML cannot be read ({exc}): a damaged file, "
                       f"or one built to attack a reader (entity expansion); {RESAVE}")


def keep_typed_escapes(worksheet: Any) -> None:
    """The shared strings of a read-only workbook as Excel saved them, for ``core.xlsx.unescaped`` to decode.

    Excel saves a typed ``_x0041_`` as ``_x005F_x0041_`` (its underscore escaped); openpyxl drops every
    ``x005F_`` of a shared string, so the typed text read as ``A`` (and ``x005F_1`` as ``1``). The strings that
    hold ``x005F_`` are read again from the package, as written; the table is scanned for it first (most hold
    none), and only those strings are replaced, in the list every sheet of the workbook reads."""
    from openpyxl.cell.text import Text
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse

    strings, archive = getattr(worksheet, "_shared_strings", None), getattr(worksheet.parent, "_archive", None)
    if not strings or archive is None:  # openpyxl's read-only internals: without them, strings stay as read
        return
    names = [n for n in archive.namelist() if n.lower().endswith("sharedstrings.xml")]
    if len(names) != 1 or not _holds(archive, names[0], ESCAPED_UNDERSCORE):
        return
    tag = f"{{{SHEET_MAIN_NS}}}si"
    index = 0
    with archive.open(names[0]) as xml:
        for _, node in iterparse(xml):
            if node.tag == tag:
                text = Text.from_tree(node).content
                if ESCAPED_UNDERSCORE.decode() in text and index < len(strings):
                    strings[index] = text
                index += 1
                node.clear()


def _holds(archive: zipfile.ZipFile, name: str, needle: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the part holds ``needle``, read a chunk at a time."""
    tail = b""
    with archive.open(name) as part:
        while data := part.read(chunk):
            if needle in tail + data:
                return True
            tail = data[-len(needle) + 1:]
    return False
