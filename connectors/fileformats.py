"""Reading CSV and Excel files as records (the files and sftp kinds): streamed, the encoding sniffed, a record
the CSV parser refuses kept with its raw text so that nothing is lost."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any, BinaryIO

from connectors.tabular import UNDECODABLE, ShownAsDay
from core.errors import ConfigError
from core.settings import get_settings
from core.xlsx import unescaped
from core.xlsx_package import XML_ERRORS, check_package, keep_typed_escapes, xml_refusal

SNIFF_BYTES = 64 * 1024
# A source workbook may be large (a million rows unpack to about a gigabyte of XML, streamed); past this, or a part
# packed like a zip bomb, it is refused before it is opened (core/xlsx_package.py).
MAX_UNPACKED_BYTES = 4 * 1024 ** 3
# A field may be as long as a text column holds (a judgment, a contract's full text): the csv module's default of
# 128 KiB refused such a record as malformed and quarantined it without its key. A source file's records are
# bounded lower, by GOVSHARE_CSV_MAX_FIELD_CHARS (_Lines); this limit is the csv module's, for every reader.
MAX_FIELD_CHARS = 1 << 28
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
NON_ASCII = re.compile(rb"[\x80-\xff]")
GB_CODECS = ("gb2312", "gbk", "gb18030")
LATE_SNIFF = "govshare-sniff-at-first-non-ascii"


# --- CSV ------------------------------------------------------------------------------------------------------

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


def sniff_encoding(head: bytes) -> str:
    """UTF-8 (with or without BOM) when the first 64 KiB read mostly as UTF-8, otherwise GB18030 (国标, covers GBK);
    UTF-16 when the file starts with its byte-order mark (Excel's "Unicode text" export).

    Mostly, not entirely: a UTF-8 export with one pasted GB18030 line stays UTF-8 (that line is flagged), where
    GB18030, which decodes almost any bytes, would turn the whole file into plausible-looking nonsense.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the mark and drops it
    text = head[:-3].decode("utf-8", errors="replace") if len(head) >= SNIFF_BYTES else head.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    return "utf-8-sig" if bad == 0 or good > 2 * bad else "gb18030"


class _SniffAtFirstNonAscii(codecs.IncrementalDecoder):
    """For a file whose first 64 KiB are plain ASCII (English headings, codes and numbers first): ASCII is both
    UTF-8 and GB18030, so the encoding is sniffed where the first other byte appears. Sniffed at the start, a GBK
    export whose Chinese text began past the first 64 KiB was read as UTF-8 and every Chinese row quarantined."""

    def __init__(self, errors: str = "strict") -> None:
        super().__init__(errors)
        self.reset()

    def reset(self) -> None:
        self.inner: codecs.IncrementalDecoder | None = None
        self.pending = b""

    def getstate(self) -> tuple[bytes, int]:
        return (self.pending, 0) if self.inner is None else self.inner.getstate()

    def setstate(self, state: tuple[bytes, int]) -> None:
        self.reset()
        self.pending = state[0]

    def decode(self, data: bytes, final: bool = False) -> str:
        if self.inner is not None:
            return self.inner.decode(data, final)
        data = self.pending + bytes(data)
        match = NON_ASCII.search(data)
        if match is None:
            self.pending = b""
            return data.decode("ascii")
        plain, rest = data[: match.start()], data[match.start():]
        if len(rest) < SNIFF_BYTES and not final:
            self.pending = rest  # sniff on a full window
            return plain.decode("ascii")
        self.pending = b""
        sniffed = sniff_encoding(rest[:SNIFF_BYTES])
        self.inner = codecs.getincrementaldecoder("utf-8" if sniffed == "utf-8-sig" else sniffed)(self.errors)
        return plain.decode("ascii") + self.inner.decode(rest, final)


def _late_sniff_codec(name: str) -> codecs.CodecInfo | None:
    if name != LATE_SNIFF.replace("-", "_"):
        return None
    ascii_codec = codecs.lookup("ascii")
    return codecs.CodecInfo(ascii_codec.encode, ascii_codec.decode, name=LATE_SNIFF,
                            incrementaldecoder=_SniffAtFirstNonAscii)


codecs.register(_late_sniff_codec)


def _reads_as_utf8(head: bytes) -> bool:
    """The head is valid UTF-8 with characters of three bytes or more (CJK among them). GBK text rarely forms
    such sequences for more than a character or two, so a real GBK export is never taken for UTF-8."""
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)  # a cut last character
    except UnicodeDecodeError:
        return False
    return any(ord(ch) >= 0x800 for ch in text)


def _utf8_under_gb(declared: str) -> str:
    return (f"编码声明为 {declared} 但文件是 UTF-8 / the file reads as UTF-8 although the stream declares "
            f"{declared}: read as {declared} its Chinese text would be published garbled; set the stream's "
            "encoding to utf-8 or auto")


def _utf8_line(text: str, gb: str) -> str | None:
    """Why a line read as GBK is UTF-8 text, if it is: its bytes are valid UTF-8 with two characters or more of
    three bytes (CJK among them). Only the file's first 64 KiB of text are judged as a whole, and GB18030 decodes
    almost any bytes: a UTF-8 export joined after a GBK one was published garbled (上海 as 涓婃捣), unflagged.
    One such character alone is no sign: its three bytes leave GBK a byte short, which already reads as an error."""
    if text.isascii():
        return None
    try:
        utf8 = text.encode(gb, "surrogateescape").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    if sum(1 for ch in utf8 if ord(ch) >= 0x800) < 2:
        return None
    return (f"此行为 UTF-8 编码，文件按 {gb} 读取 / this line is UTF-8 text in a file read as {gb} (two exports of "
            "different encodings joined, or an export that changed its encoding): read so it would be published "
            f"garbled; deliver the file again in one encoding (UTF-8): {excerpt(utf8)}")


class _LateUtf8Check(io.RawIOBase):
    """The rest of a file whose head is plain ASCII, under a declared GBK/GB18030: the bytes pass through as they
    are read, and the first SNIFF_BYTES from its first other byte are judged as the head is (_reads_as_utf8).
    A UTF-8 export with codes and numbers first had its Chinese text published garbled. Raising stops the read
    mid-file, before anything is published; only that window is held, never the file."""

    def __init__(self, rest: BinaryIO, declared: str) -> None:
        self._rest, self._declared = rest, declared
        self._window: bytearray | None = None  # from the first non-ASCII byte on, until judged
        self._judged = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._rest.read(len(buffer))
        if not self._judged:
            self._watch(data)
        buffer[: len(data)] = data
        return len(data)

    def _watch(self, data: bytes) -> None:
        if self._window is None:
            match = NON_ASCII.search(data)
            if match is None:
                self._judged = not data  # the end, all ASCII: nothing to judge
                return
            self._window = bytearray(data[match.start():])
        else:
            self._window += data
        if len(self._window) >= SNIFF_BYTES or not data:
            window, self._window, self._judged = bytes(self._window[:SNIFF_BYTES]), None, True
            if _reads_as_utf8(window):
                raise ConfigError(_utf8_under_gb(self._declared))


@dataclass
class Record:
    number: int               # line (CSV) or row (Excel) where the record starts
    fields: list[Any] | None  # None: the parser refused the record
    problem: str | None = None
    raw: str = ""             # the record's text, quoted in a problem so that nothing is lost
    epoch: datetime | None = None  # Excel: the workbook's date system (day 0 of its serial numbers)


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
    if codec.name in GB_CODECS and _reads_as_utf8(head):
        # GB18030 decodes almost any bytes: a UTF-8 export (the system changed its export, the stream kept its
        # setting) was published as plausible-looking nonsense (上海 as 涓婃捣), every row, with no flag.
        raise ConfigError(_utf8_under_gb(encoding))
    if codec.name in GB_CODECS and NON_ASCII.search(head) is None:
        binary = _LateUtf8Check(binary, encoding)  # the head tells nothing: judged where the text begins
    # Read as GBK, each line is judged again (_utf8_line): a UTF-8 export joined after a GBK one.
    gb = codec.name if codec.name in GB_CODECS else "gb18030" if chosen == LATE_SNIFF else None
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
            yield Record(number, fields, _suspect(text_of, gb=gb), raw=text_of)


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


# --- Excel ----------------------------------------------------------------------------------------------------

@dataclass
class _Merged:
    """A merged range over several rows (a 区县 cell merged down the rows of its district): every row it spans
    reads its value, as a person reading the sheet does; openpyxl gives it to the top-left cell alone, so the
    other rows were published with NULL there."""
    min_col: int
    min_row: int
    max_col: int
    max_row: int
    value: Any = None


def _merged_down(workbook: Any, worksheet: Any) -> list[_Merged]:
    """The sheet's merged ranges that span more than one row, read from its XML (read-only mode has none)."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries

    path, archive = getattr(worksheet, "_worksheet_path", None), getattr(workbook, "_archive", None)
    if path is None or archive is None:  # openpyxl's read-only internals: without them, cells stay as read
        return []
    ranges = []
    with archive.open(path) as xml:
        for _, element in iterparse(xml):
            if element.tag.endswith("}mergeCell") and element.get("ref"):
                min_col, min_row, max_col, max_row = range_boundaries(element.get("ref"))
                if max_row > min_row:
                    ranges.append(_Merged(min_col, min_row, max_col, max_row))
            element.clear()
    return ranges


def _fill_merged(cells: list[Any], number: int, merged: list[_Merged]) -> None:
    for area in merged:
        if not area.min_row <= number <= area.max_row:
            continue
        if number == area.min_row:
            area.value = cells[area.min_col - 1] if area.min_col <= len(cells) else None
        if area.value is None:
            continue
        if len(cells) < area.max_col:
            cells.extend([None] * (area.max_col - len(cells)))
        for column in range(area.min_col, area.max_col + 1):
            if column != area.min_col or number != area.min_row:
                cells[column - 1] = area.value


def excel_rows(path: str, *, sheet: str | int | None = None) -> Iterator[Record]:
    """One Record per non-empty row of one sheet, streamed with openpyxl's read-only mode.

    A cell's value is the one Excel saved with the file. A formula never calculated (a workbook a program wrote
    and no one opened in Excel) has none and was read as an empty cell, silently: the sheet is read a second time
    beside the first, for its formulas, and such a row is flagged with the cell and its formula."""
    import openpyxl  # imported here: only an Excel stream needs it
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    def opened(data_only: bool):  # noqa: ANN202 - an openpyxl workbook
        try:
            return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
        except FileNotFoundError:
            raise  # the file is gone, not unreadable: the caller says so
        except (InvalidFileException, OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot open as an .xlsx workbook: {exc}") from None

    def chosen(workbook):  # noqa: ANN001, ANN202 - the stream's worksheet
        if sheet is None or sheet == "":
            return workbook.worksheets[0]
        if isinstance(sheet, int) or str(sheet).isdigit():
            return workbook.worksheets[int(sheet)]
        if sheet in workbook.sheetnames:
            return workbook[sheet]
        raise ConfigError(f"sheet {sheet!r} not found; sheets: {', '.join(workbook.sheetnames)}")

    check_package(path, max_unpacked_bytes=MAX_UNPACKED_BYTES)
    try:
        yield from _sheet_rows(opened, chosen, get_column_letter)
    except XML_ERRORS as exc:
        raise xml_refusal(path, exc) from None


@lru_cache(maxsize=256)
def _shows_day_only(number_format: str) -> bool:
    from openpyxl.styles.numbers import is_datetime

    return is_datetime(number_format) == "date"


def _as_shown(value: datetime, number_format: str) -> datetime:
    """A date cell whose format shows the day alone (yyyy-mm-dd) but that holds a time of day: Excel shows the
    day, and a text column published the time too (connectors.tabular.ShownAsDay)."""
    if value.time() == datetime.min.time() or not _shows_day_only(number_format):
        return value
    return ShownAsDay.combine(value.date(), value.timetz())


def _sheet_rows(opened, chosen, get_column_letter) -> Iterator[Record]:  # noqa: ANN001 - excel_rows' helpers
    workbook = opened(True)
    written = None
    try:
        worksheet = chosen(workbook)
        keep_typed_escapes(worksheet)  # a typed _x0041_ read as A
        merged = _merged_down(workbook, worksheet)
        written = opened(False)
        # The sheet's stated size (<dimension ref="A1:B2"/>) is what a program wrote, and read-only mode stopped
        # there: rows and columns past it were silently not read. Excel ignores it; so does this read.
        worksheet.reset_dimensions()
        formulas = chosen(written)
        formulas.reset_dimensions()
        formulas = formulas.iter_rows(values_only=True)
        for number, row in enumerate(worksheet.iter_rows(), start=1):
            # Excel's _x000D_ (a CR) is the character: it was published as text
            cells = [_as_shown(c.value, c.number_format) if isinstance(c.value, datetime) else unescaped(c.value)
                     for c in row]
            if merged:
                _fill_merged(cells, number, merged)
            uncalculated = [f"{get_column_letter(i + 1)}{number} {formula}"
                            for i, (value, formula) in enumerate(zip(cells, next(formulas, ())))
                            if value is None and isinstance(formula, str) and formula.startswith("=")]
            while cells and cells[-1] is None:
                cells.pop()
            if cells or uncalculated:
                problem = (f"公式未计算、无保存值 / cell(s) {', '.join(uncalculated)}: a formula with no value saved "
                           "in the file (written by a program, never calculated); open and save the file in Excel, "
                           "or have the exporting system write values") if uncalculated else None
                yield Record(number, cells, problem, epoch=workbook.epoch)
    finally:
        workbook.close()
        if written is not None:
            written.close()
