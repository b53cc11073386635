"""Reading CSV files as records (the files and sftp kinds): streamed, the encoding sniffed
(connectors/csv_encoding.py), a record the CSV parser refuses kept with its raw text so that nothing is lost.
Excel's records are read in connectors/excel_rows.py."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from connectors.csv_encoding import (
    GB_CODECS,
    LATE_SNIFF,
    NON_ASCII,
    SNIFF_BYTES,
    LateUtf8Check,
    reads_as_utf8,
    sniff_encoding,
    utf8_under_gb,
)
from connectors.tabular import UNDECODABLE
from core.errors import ConfigError
from core.settings import get_settings

# A field may be as long as a text column holds (a judgment, a contract's full text): the csv module's default of
# 128 KiB refused such a record as malformed and quarantined it without its key. A source file's records are
# bounded lower, by GOVSHARE_CSV_MAX_FIELD_CHARS (_Lines); this limit is the csv module's, for every reader.
MAX_FIELD_CHARS = 1 << 28
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))




class _Prepended(io.RawIOBase):
    """A binary stream whose first bytes were already read (to sniff the encoding)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _utf8_line(text: str, gb: str) -> str | None:
    """Why a line read as GBK is UTF-8 text, if it is: its bytes are valid UTF-8 with two characters or more of
    three bytes (CJK among them), and that reading is the likelier one. Only the file's first 64 KiB of text are
    judged as a whole, and GB18030 decodes almost any bytes: a UTF-8 export joined after a GBK one was published
    garbled (上海 as 涓婃捣), unflagged. One such character alone is no sign: its three bytes leave GBK a byte
    short, which already reads as an error.

    Valid UTF-8 alone quarantined GBK lines too (椁风肠 is, byte for byte, UTF-8 餷糦): the reading with fewer
    characters outside GB2312 (the common set, _rare) wins; a tie is quarantined, as a garbled value published
    is worse than a good one held for the provider to see. UTF-8 read as
    GBK falls into GBK's extension and user-defined areas (涓婃捣: 婃); GBK text read as UTF-8, into rare CJK."""
    if text.isascii():
        return None
    try:
        utf8 = text.encode(gb, "surrogateescape").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    if sum(1 for ch in utf8 if ord(ch) >= 0x800) < 2 or _rare(utf8) > _rare(text):
        return None
    return (f"此行为 UTF-8 编码，文件按 {gb} 读取 / this line is UTF-8 text in a file read as {gb} (two exports of "
            "different encodings joined, or an export that changed its encoding): read so it would be published "
            f"garbled; deliver the file again in one encoding (UTF-8): {excerpt(utf8)}")


def _rare(text: str) -> int:
    """How many characters of the text are outside ASCII and GB2312 (the 6,763 common hanzi and their marks)."""
    return sum(1 for ch in text if not ch.isascii() and not _in_gb2312(ch))


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Record:
    number: int               # line (CSV) or row (Excel) where the record starts
    fields: list[Any] | None  # None: the parser refused the record
    problem: str | None = None
    raw: str = ""             # the record's text, quoted in a problem so that nothing is lost
    epoch: datetime | None = None  # Excel: the workbook's date system (day 0 of its serial numbers)
    encoding: str = "utf-8"   # CSV: the codec the record was read with (its undecodable bytes quoted in it)


def excerpt(text: str, limit: int = 2000) -> str:
    text = UNDECODABLE.sub("\ufffd", text.rstrip("\r\n"))
    return repr(text if len(text) <= limit else text[:limit] + "…")


def csv_rows(binary: BinaryIO, *, encoding: str = "auto", delimiter: str = ",", quotechar: str = '"') -> Iterator[Record]:
    """One Record per CSV record, streamed; the encoding is sniffed unless given."""
    head = binary.read(SNIFF_BYTES)
    chosen = sniff_encoding(head) if encoding in ("auto", "", None) else encoding
    if encoding in ("auto", "", None) and len(head) >= SNIFF_BYTES and NON_ASCII.search(head) is None:
        chosen = LATE_SNIFF
    if chosen.lower().replace("_", "-") in ("utf-8", "utf8"):
        chosen = "utf-8-sig"  # a BOM is never part of the first heading
    try:
        codec = codecs.lookup(chosen)
    except LookupError:
        raise ConfigError(f"encoding {chosen!r} is unknown; use utf-8, gb18030 or auto") from None
    if codec.name in GB_CODECS and reads_as_utf8(head):
        # GB18030 decodes almost any bytes: a UTF-8 export (the system changed its export, the stream kept its
        # setting) was published as plausible-looking nonsense (上海 as 涓婃捣), every row, with no flag.
        raise ConfigError(utf8_under_gb(encoding))
    if codec.name in GB_CODECS and NON_ASCII.search(head) is None:
        binary = LateUtf8Check(binary, encoding)  # the head tells nothing: judged where the text begins
    # Read as GBK, each line is judged again (_utf8_line): a UTF-8 export joined after a GBK one.
    gb = codec.name if codec.name in GB_CODECS else "gb18030" if chosen == LATE_SNIFF else None
    read_as = "utf-8" if codec.name == "utf-8-sig" else codec.name  # a BOM is read once, never inside a value
    text = io.TextIOWrapper(io.BufferedReader(_Prepended(head, binary), buffer_size=1 << 20), encoding=chosen,
                            errors="surrogateescape", newline="")
    lines = _Lines(text, limit=get_settings().csv_max_field_chars)
    reader = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=True)
    while True:
        number = lines.consumed + 1
        lines.begin()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _PastBound as past:
            yield _past_bound(lines, past, number)
            continue
        except csv.Error as exc:
            raw = list(lines.raw)
            if len(raw) > 1:
                # A stray quote made every later line (to the end of the file, or to the field size limit) part of
                # one field: they were quarantined as one "row" whose reason kept 2,000 characters, the rest lost.
                # That record's first line is quarantined; the lines after it are read again as records.
                lines.again(raw[1:])
                yield Record(number, None, f"CSV 格式错误：引号未闭合 / malformed CSV: a quote on this line is not "
                             f"closed before the next {len(raw) - 1:,} line(s) ({exc}); the lines after it were "
                             f"read on their own: {excerpt(raw[0])}", raw=raw[0])
            else:
                yield Record(number, None, f"CSV 格式错误 / malformed CSV ({exc}): {excerpt(''.join(raw))}")
            continue
        if fields:  # blank lines carry no record
            text_of = "".join(lines.raw)
            yield Record(number, fields, _suspect(text_of, gb=gb), raw=text_of, encoding=read_as)


class _PastBound(Exception):
    """The record being read passed the bound (GOVSHARE_CSV_MAX_FIELD_CHARS): ``line`` is the line that would
    have passed it, or None when that line alone is longer (it was skipped to its end, ``head`` its start)."""

    def __init__(self, line: str | None, head: str = "") -> None:
        super().__init__()
        self.line, self.head = line, head


class _Lines:
    """A file's lines for the CSV parser, with the text of the record being read (``raw``) and lines to read
    again (``again``) after a record that swallowed them; ``consumed`` counts the lines handed out.

    A record holds at most ``limit`` characters and a line is read at most that far: a quote never closed took
    every later line (to the end, or the csv module's 256 Mi-character field limit) and one 100 MB field took
    663 MB, past what a worker has. A line longer than that is skipped to its end, never held whole."""

    def __init__(self, text: io.TextIOBase, *, limit: int) -> None:
        self._text, self._again, self.limit = text, [], limit
        self.raw: list[str] = []
        self.consumed = self._size = 0

    def begin(self) -> None:
        """A new record starts."""
        self.raw.clear()
        self._size = 0

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else self._text.readline(self.limit + 1)
        self.consumed += 1
        if isinstance(line, _PastBound):  # read again after the record that held it
            raise line
        if not line:
            self.consumed -= 1
            raise StopIteration
        if len(line) > self.limit:
            while (rest := self._text.readline(self.limit)) and not rest.endswith(("\n", "\r")):
                pass  # the rest of the line, dropped as it is read
            raise _PastBound(None, line[:4000])
        if self._size + len(line) > self.limit:
            raise _PastBound(line)
        self._size += len(line)
        self.raw.append(line)
        return line

    def again(self, lines: list[str | _PastBound]) -> None:
        self._again.extend(reversed(lines))
        self.consumed -= len(lines)


def _past_bound(lines: _Lines, past: _PastBound, number: int) -> Record:
    """The record that passed the bound, quarantined: a record of several lines (a quote never closed) by its
    first line, the lines after it read again on their own; a line too long alone, by its start."""
    bound = f"the bound of {lines.limit:,} characters (GOVSHARE_CSV_MAX_FIELD_CHARS)"
    raw = list(lines.raw)
    if raw:
        lines.again([*raw[1:], past.line if past.line is not None else past])
        return Record(number, None, f"CSV 字段超过 {lines.limit:,} 字符上限：引号未闭合或值过大 / a field starting on "
                      f"this line runs past {bound}: a quote on this line is never closed, or the value is larger "
                      f"than the hub reads; the lines after it were read on their own: {excerpt(raw[0])}", raw=raw[0])
    return Record(lines.consumed, None, f"CSV 行超过 {lines.limit:,} 字符上限，未读取 / this line is longer than {bound} "
                  "and was not read (a value that large, or a file that is not CSV); shorten the value at the "
                  f"source, or raise the bound: {excerpt(past.head)}", raw=past.head[:2000])


def _suspect(text: str, *, gb: str | None = None) -> str | None:
    """Why a parsed record must not be published as it reads: characters that are no data in a CSV text, or
    (``gb``: the GBK codec the file is read with) a line that is UTF-8 text."""
    problems = [found] if gb and (found := _utf8_line(text, gb)) else []
    if "\ufeff" in text:
        problems.append("字节顺序标记（BOM）出现在文件中间，可能是多个导出文件被拼接 / a byte-order mark (BOM) inside "
                        "the file: two exports joined (cat, copy /b) put the second one's heading here, or a value "
                        "carries an invisible U+FEFF; deliver each export as its own file")
    if "\x00" in text:
        problems.append("含 NUL 字节 / a NUL byte (0x00): a file padded by an interrupted copy, or a UTF-16 export "
                        "read without its mark; export again as UTF-8 or GB18030")
    return "; ".join(problems) or None
