"""An HTTP page's records, parsed one at a time from the page kept on disk (分页流式读取).

A page was held whole as bytes and parsed into Python values, about eight times its size (a 58 MiB page took
470 MiB), so pages were refused past 16 MiB and a smaller one could still take the worker's memory. The body is
now spooled as it arrives (connectors/http_fetch.py: memory up to SPOOL_IN_MEMORY, then a temporary file), and
read twice: once to check the whole document and count and digest its records (a cut-off or malformed answer is
retried or refused before any row is published; pagination compares pages by their digest), then once to hand
the records out one at a time. Only the records at ``records_path`` are streamed: the parts beside them (a
``meta`` object, the next cursor) are small by nature and parsed whole.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from core.errors import ConfigError

CHUNK = 1 << 16
SPACE = re.compile(r"[ \t\n\r]*")
WIDE = re.compile("[\u0800-\U0010ffff]")
NATIONAL = ("gbk", "gb2312", "gb18030", "cp936", "x-gbk")
MISSING = object()


class Truncated(ValueError):
    """The document ended before it did: an answer cut off mid-transfer (retried)."""


class Spool:
    """A page's bytes as they arrived, and what its encoding judgment needs: whether they are UTF-8 and hold a
    character of three bytes or more (connectors.http_fetch.charset's rule for a page under a GB label)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.size, self.head = file, 0, b""
        self.utf8, self.ascii, self.wide = True, True, False
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)
        if len(self.head) < 4096:
            self.head = (self.head + chunk)[:4096]
        self._judge(chunk, final=False)

    def close_writing(self) -> None:
        self._judge(b"", final=True)
        self.file.seek(0)

    def _judge(self, chunk: bytes, *, final: bool) -> None:
        if not self.utf8:
            return
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.utf8 = False
            return
        self.ascii = self.ascii and text.isascii()
        self.wide = self.wide or WIDE.search(text) is not None

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def text(self, encoding: str) -> IO[str]:
        """The page from its start as text (strict: a byte that is not text in the encoding raises)."""
        self.file.seek(0)
        return io.TextIOWrapper(_Unclosing(self.file), encoding=encoding, errors="strict", newline="")

    def close(self) -> None:
        self.file.close()


class _Unclosing(io.RawIOBase):
    """The spooled file, left open when a text reader over it is dropped (it is read twice)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def page_encoding(spool: Spool, declared: str | None, *, url: str, fail: Callable[[str], str]) -> str:
    """The codec the page is read with: JSON's own (UTF-8, or UTF-16/32 told by its bytes) unless the server
    declares another charset and the page is not UTF-8 (the rule of connectors.http_fetch._text)."""
    if declared is None or declared.replace("_", "-").startswith(("utf-8", "utf8", "utf-16", "utf-32")):
        return json.detect_encoding(spool.head)
    national = declared in NATIONAL
    if spool.utf8 and (not national or spool.ascii or spool.wide):
        return "utf-8"
    codec = "gb18030" if national else declared  # GB18030 holds GBK and GB2312
    try:
        codecs.lookup(codec)
    except LookupError:
        raise ConfigError(fail(f"{url} answered in charset {declared!r}, which is unknown here; ask the provider "
                               "for UTF-8 (JSON's own encoding) or GB18030")) from None
    return codec


class _Reader:
    """A pull parser over JSON text: whitespace, punctuation, and whole values (json's raw_decode) from a
    window that holds at least the value being read, never the document."""

    def __init__(self, text: IO[str], decoder: json.JSONDecoder) -> None:
        self.text, self.decoder, self.buf, self.i, self.eof = text, decoder, "", 0, False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.text.read(max(CHUNK, len(self.buf) - self.i))  # doubling: a large value parses in few tries
        if not chunk:
            self.eof = True
            return False
        self.buf, self.i = self.buf[self.i:] + chunk, 0
        return True

    def peek(self) -> str | None:
        """The next character past whitespace; None at the end of the text."""
        while True:
            self.i = SPACE.match(self.buf, self.i).end()
            if self.i < len(self.buf):
                return self.buf[self.i]
            if not self._more():
                return None

    def take(self, allowed: str) -> str:
        found = self.peek()
        if found is None:
            raise Truncated("the answer ends mid-document")
        if found not in allowed:
            raise json.JSONDecodeError(f"Expecting one of {allowed!r}", self.buf, self.i)
        self.i += 1
        return found

    def value(self) -> Any:
        if self.peek() is None:
            raise Truncated("the answer ends mid-document")
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.i)
            except json.JSONDecodeError as exc:
                # the window may end within the value: a string, or a number or literal cut short (1. or tru)
                near_end = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 64
                if near_end and self._more():
                    continue
                if exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf.rstrip()):
                    raise Truncated(exc.msg) from None
                raise
            if end == len(self.buf) and self._more():  # a number may go on past the window
                continue
            self.i = end
            return value


class Page:
    """One answer: its records' count and digest, the next cursor, and the records (iterated from disk)."""

    def __init__(self, spool: Spool, encoding: str, *, records_path: str | None, cursor_path: str | None,
                 decoder: json.JSONDecoder) -> None:
        self._spool, self._encoding, self._decoder = spool, encoding, decoder
        self._records_path = tuple(p for p in (records_path or "").split(".") if p)
        self._cursor_path = tuple(p for p in cursor_path.split(".") if p) if cursor_path else None
        self.count, self.cursor, self.found, self.keys = 0, None, MISSING, ""
        digest = hashlib.blake2b(digest_size=16)
        for record in self._walk(check=True):
            self.count += 1
            digest.update(json.dumps(record, sort_keys=True, default=str).encode())  # ASCII: lone surrogates too
            digest.update(b"\x00")
        self.digest = digest.hexdigest()

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        return self._walk(check=False)

    def close(self) -> None:
        self._spool.close()

    def _walk(self, *, check: bool) -> Iterator[Any]:
        reader = _Reader(self._spool.text(self._encoding), self._decoder)
        state: dict[str, Any] = {}
        yield from self._value(reader, (), state)
        if reader.peek() is not None:
            raise json.JSONDecodeError("Extra data", reader.buf, reader.i)
        if check:
            self.found = state.get("records", MISSING)
            self.cursor = state.get("cursor")
            self.keys = state.get("keys", "")

    def _value(self, reader: _Reader, path: tuple[str, ...], state: dict[str, Any]) -> Iterator[Any]:
        records, cursor = self._records_path, self._cursor_path
        if path == records:
            if reader.peek() != "[":
                state["records"] = reader.value()  # null (no records) or not a list (an error)
                state.setdefault("keys", _keys(state["records"]))
                return
            state["records"] = True
            state.setdefault("keys", "list")
            reader.take("[")
            if reader.peek() == "]":
                reader.take("]")
                return
            while True:
                yield reader.value()
                if reader.take(",]") == "]":
                    return
        if path == cursor:
            state["cursor"] = reader.value()
            return
        below = [wanted for wanted in (records, cursor) if wanted is not None and wanted[:len(path)] == path]
        if not below or reader.peek() != "{":  # not wanted, or a list or scalar: whole, and the rest dug from it
            value = reader.value()
            if not path:
                state["keys"] = _keys(value)
            for wanted, name in ((records, "records"), (cursor, "cursor")):
                if wanted is not None and wanted[:len(path)] == path and name not in state:
                    found = dig(value, ".".join(wanted[len(path):]), MISSING)
                    if found is not MISSING:
                        state[name] = True if name == "records" and isinstance(found, list) else found
                        if name == "records" and isinstance(found, list):
                            yield from found
            return
        reader.take("{")
        keys: list[str] = []
        if reader.peek() == "}":
            reader.take("}")
        else:
            while True:
                key = reader.value()
                if not isinstance(key, str):
                    raise json.JSONDecodeError("Expecting property name", reader.buf, reader.i)
                keys.append(key)
                reader.take(":")
                yield from self._value(reader, (*path, key), state)
                if reader.take(",}") == "}":
                    break
        if not path:
            state["keys"] = ", ".join(keys)


def dig(document: Any, path: str | None, default: Any = None) -> Any:
    """The value at a dotted path (``data.items``); the document itself for an empty path; default if absent."""
    for part in (path or "").split("."):
        if not part:
            continue
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return default
    return document


def _keys(document: Any) -> str:
    return ", ".join(document) if isinstance(document, dict) else type(document).__name__
