"""A CSV file's encoding (文件编码): sniffed from its first 64 KiB (or from its first non-ASCII byte when those
are plain ASCII), and a declared GBK/GB18030 checked against UTF-8 text, which GB18030 would decode garbled."""

from __future__ import annotations

import codecs
import io
import re
from typing import BinaryIO

from core.errors import ConfigError

SNIFF_BYTES = 64 * 1024
NON_ASCII = re.compile(rb"[\x80-\xff]")
GB_CODECS = ("gb2312", "gbk", "gb18030")
LATE_SNIFF = "govshare-sniff-at-first-non-ascii"


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


def reads_as_utf8(head: bytes) -> bool:
    """The head is valid UTF-8 with characters of three bytes or more (CJK among them). GBK text rarely forms
    such sequences for more than a character or two, so a real GBK export is never taken for UTF-8."""
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)  # a cut last character
    except UnicodeDecodeError:
        return False
    return any(ord(ch) >= 0x800 for ch in text)


def utf8_under_gb(declared: str) -> str:
    return (f"编码声明为 {declared} 但文件是 UTF-8 / the file reads as UTF-8 although the stream declares "
            f"{declared}: read as {declared} its Chinese text would be published garbled; set the stream's "
            "encoding to utf-8 or auto")


class LateUtf8Check(io.RawIOBase):
    """The rest of a file whose head is plain ASCII, under a declared GBK/GB18030: the bytes pass through as they
    are read, and the first SNIFF_BYTES from its first other byte are judged as the head is (reads_as_utf8).
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
            if reads_as_utf8(window):
                raise ConfigError(utf8_under_gb(self._declared))
