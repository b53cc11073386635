"""Decoding PostgreSQL's pgoutput logical replication messages (protocol version 1, text tuple format).

Each message of the stream is one of Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate
(or a logical Message); see the PostgreSQL manual, "Logical Replication Message Formats". Column values come
as text in the server's output format ('t'), as NULL ('n'), or as "unchanged TOASTed value" ('u': an update
that did not touch a large out-of-line value does not resend it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


class Unchanged:
    """An unchanged TOASTed value: the row's previous value of that column still holds."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
Tuple = list[str | None | Unchanged]


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str
    columns: list[str] = field(default_factory=list)
    key_flags: list[bool] = field(default_factory=list)
    type_oids: list[int] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass
class Begin:
    final_lsn: int
    xid: int


@dataclass
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass
class Change:
    """Insert, update or delete of one row: old is the key (or full old row), new the row after the change."""

    op: str  # "insert", "update", "delete"
    relid: int
    old: Tuple | None
    new: Tuple | None


@dataclass
class Truncate:
    relids: list[int]


@dataclass
class Ignored:
    kind: str


Message = Begin | Commit | Relation | Change | Truncate | Ignored


class _Reader:
    def __init__(self, payload: bytes) -> None:
        self.data = memoryview(payload)
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def byte(self) -> str:
        value = chr(self.data[self.pos])
        self.pos += 1
        return value

    def string(self) -> str:
        end = bytes(self.data[self.pos:]).index(b"\x00")
        value = bytes(self.data[self.pos:self.pos + end]).decode("utf-8")
        self.pos += end + 1
        return value

    def tuple_data(self) -> Tuple:
        (count,) = self.take("!h")
        values: Tuple = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in ("t", "b"):
                (length,) = self.take("!i")
                raw = bytes(self.data[self.pos:self.pos + length])
                self.pos += length
                values.append(raw.decode("utf-8") if kind == "t" else raw.hex())
            else:
                raise ValueError(f"pgoutput: unknown tuple value kind {kind!r}")
        return values


def decode(payload: bytes) -> Message:
    """One pgoutput message from its bytes."""
    reader = _Reader(payload)
    kind = reader.byte()
    if kind == "B":
        final_lsn, _timestamp, xid = reader.take("!QqI")
        return Begin(final_lsn=final_lsn, xid=xid)
    if kind == "C":
        _flags, commit_lsn, end_lsn, _timestamp = reader.take("!bQQq")
        return Commit(commit_lsn=commit_lsn, end_lsn=end_lsn)
    if kind == "R":
        (relid,) = reader.take("!I")
        relation = Relation(relid=relid, namespace=reader.string() or "pg_catalog", name=reader.string(),
                            replica_identity=reader.byte())
        (count,) = reader.take("!h")
        for _ in range(count):
            (flags,) = reader.take("!b")
            relation.key_flags.append(bool(flags & 1))
            relation.columns.append(reader.string())
            type_oid, _typmod = reader.take("!Ii")
            relation.type_oids.append(type_oid)
        return relation
    if kind == "I":
        (relid,) = reader.take("!I")
        reader.byte()  # 'N'
        return Change(op="insert", relid=relid, old=None, new=reader.tuple_data())
    if kind == "U":
        (relid,) = reader.take("!I")
        marker, old = reader.byte(), None
        if marker in ("K", "O"):  # the old key (key changed) or whole old row (REPLICA IDENTITY FULL)
            old = reader.tuple_data()
            marker = reader.byte()
        if marker != "N":
            raise ValueError(f"pgoutput: update without a new tuple (marker {marker!r})")
        return Change(op="update", relid=relid, old=old, new=reader.tuple_data())
    if kind == "D":
        (relid,) = reader.take("!I")
        reader.byte()  # 'K' or 'O'
        return Change(op="delete", relid=relid, old=reader.tuple_data(), new=None)
    if kind == "T":
        count, _options = reader.take("!Ib")
        return Truncate(relids=[reader.take("!I")[0] for _ in range(count)])
    if kind in ("O", "Y", "M"):  # origin, type, logical message: nothing to apply
        return Ignored(kind=kind)
    raise ValueError(f"pgoutput: unknown message type {kind!r}; was the slot created with another plugin?")
