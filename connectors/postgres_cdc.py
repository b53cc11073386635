"""PostgreSQL change capture (变更捕获) through logical replication with the pgoutput plugin.

A resource in cdc mode owns one publication (in the source database) and one logical replication slot (in the
source cluster), both named after the resource. The first run creates the slot over the replication protocol
with an exported snapshot and reads the table inside that snapshot, so the full read is exactly the state at
the slot's consistent point: every later commit arrives through the slot, none twice, none missed. Later runs
stream pgoutput messages from the slot and collapse them by primary key.

The slot is never advanced here while reading: the pipeline confirms a position (pg_replication_slot_advance)
only after the version holding those changes is committed, so a crash before that re-delivers the changes.

What the capture hands the pipeline (the captured table, the changes collapsed by key, and their Arrow
batches) is in connectors/postgres_captured.py.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extras
import pyarrow as pa

from connectors.base import StreamSpec
from connectors.pgoutput import Begin, Change, Commit, Relation, Truncate, decode, lsn_int, lsn_text
from connectors.postgres import PostgresConnector
from connectors.postgres_captured import CapturedTable, Collected, collapse
from connectors.postgres_catalog import table_identity
from connectors.postgres_forms import SESSION_OPTIONS, scalar_forms
from core.errors import ConfigError, FatalError, RetriableError

class StreamSchemaChanged(Exception):
    """The table's columns changed while capturing: the stream cannot be merged; re-read the table."""


@dataclass
class SlotInfo:
    name: str
    database: str
    active: bool
    restart_lsn: str | None
    confirmed_flush_lsn: str | None
    wal_status: str | None
    retained_bytes: int


def slot_name(prefix: str, resource_code: str) -> str:
    """Slot and publication name for a resource: lower-case letters, digits and underscores, at most 63."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in resource_code.lower())
    return f"{prefix}_{cleaned}"[:63]


class ChangeCapture:
    def __init__(self, connector: PostgresConnector, *, slot: str) -> None:
        if not isinstance(connector, PostgresConnector):
            raise ConfigError(f"change capture (cdc) needs a postgresql source; {connector.name!r} is {connector.kind}")
        self.connector = connector
        self.slot = slot
        self.publication = slot

    def _connect(self, options: str = SESSION_OPTIONS):  # noqa: ANN202 - psycopg2 connection
        kwargs = self.connector._dsn_kwargs()  # noqa: SLF001 - same package
        try:
            return psycopg2.connect(**kwargs, options=options)
        except psycopg2.OperationalError as exc:
            raise self.connector.error(str(exc), doing="cannot connect", sqlstate=exc.pgcode) from exc

    def _replication(self, options: str = SESSION_OPTIONS):  # noqa: ANN202 - LogicalReplicationConnection
        kwargs = self.connector._dsn_kwargs()  # noqa: SLF001
        try:
            return psycopg2.connect(**kwargs, options=options,
                                    connection_factory=psycopg2.extras.LogicalReplicationConnection)
        except psycopg2.OperationalError as exc:
            reason = " ".join(str(exc).split())
            if "replication" in reason and ("pg_hba" in reason or "permission" in reason or "must be" in reason):
                raise ConfigError(self.connector.fail(
                    f"replication connection refused: {reason}; grant REPLICATION to {self.connector.config['user']} "
                    "and allow it in pg_hba.conf (a 'replication' line)")) from exc
            raise self.connector.error(reason, doing="cannot open a replication connection", sqlstate=exc.pgcode) from exc

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with closing(self._connect()) as conn, conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    # --- checks and setup ---------------------------------------------------------------------------------

    def inspect(self, stream: StreamSpec) -> CapturedTable:
        """The table, refused with the reason when it cannot be captured (no primary key, wrong wal_level)."""
        if not stream.table:
            raise ConfigError("变更捕获只支持表 / change capture (cdc) reads a table, not a query: register the "
                              "resource with --table")
        schema, name = self.connector._table_parts(stream.table)  # noqa: SLF001
        with closing(self.connector._connect()) as conn, conn.cursor() as cursor:  # noqa: SLF001
            cursor.execute("SHOW wal_level")
            if cursor.fetchone()[0] != "logical":
                raise ConfigError(self.connector.fail(
                    "源库未开启逻辑复制 / wal_level is not 'logical': set wal_level = logical in postgresql.conf "
                    "and restart the source server, or use sync mode full/incremental"))
            # Arrays are read as their text on the snapshot as in the change stream ('{a,NULL}'), and published
            # in the form every other read gives them (connectors.pgarrays)
            catalogue = self.connector._catalogue(cursor, f"{schema}.{name}")  # noqa: SLF001
            forms = scalar_forms(cursor, schema, name)  # and scalars in the full read's forms too
            columns = forms.columns([column for column, _array in catalogue])
            arrays = {column.name: array for column, array in catalogue if array is not None}
            cursor.execute(
                """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                   AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary
                   ORDER BY array_position(i.indkey, a.attnum)""", (f'"{schema}"."{name}"',))
            key = tuple(r[0] for r in cursor.fetchall())
            cursor.execute("SELECT relreplident FROM pg_class WHERE oid = %s::regclass", (f'"{schema}"."{name}"',))
            identity = cursor.fetchone()[0]
            same_table = table_identity(cursor, schema, name)
        if not key:
            raise ConfigError(self.connector.fail(
                f"表 {schema}.{name} 没有主键，无法变更捕获 / table {schema}.{name} has no primary key, so its "
                "changes cannot be merged by key: add one (ALTER TABLE ... ADD PRIMARY KEY (...)) or register the "
                "resource with sync mode full"))
        if stream.primary_key and tuple(stream.primary_key) != key:
            raise ConfigError(self.connector.fail(
                f"the resource's key ({', '.join(stream.primary_key)}) is not the table's primary key "
                f"({', '.join(key)}); change capture merges by the primary key: register --key {','.join(key)}"))
        if identity not in ("d", "f"):
            raise ConfigError(self.connector.fail(
                f"table {schema}.{name} has REPLICA IDENTITY {'NOTHING' if identity == 'n' else 'USING INDEX'}; "
                "deletes would not carry the primary key: ALTER TABLE ... REPLICA IDENTITY DEFAULT"))
        return CapturedTable(schema=schema, name=name, columns=columns, primary_key=key, arrays=arrays, forms=forms,
                             identity=same_table)

    def ensure_publication(self, table: CapturedTable) -> bool:
        """The resource's publication, covering exactly its table (created or corrected). True when the table
        was not in it: its changes until now never reached the slot (a table rebuilt and renamed into place is
        in no publication)."""
        try:
            with closing(self._connect()) as conn, conn, conn.cursor() as cursor:
                cursor.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                               (self.publication,))
                tables = cursor.fetchall()
                missing = (table.schema, table.name) not in tables
                cursor.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
                if not cursor.fetchone():
                    cursor.execute(f'CREATE PUBLICATION "{self.publication}" FOR TABLE {table.quoted}')
                elif tables != [(table.schema, table.name)]:
                    cursor.execute(f'ALTER PUBLICATION "{self.publication}" SET TABLE {table.quoted}')
        except psycopg2.Error as exc:
            raise ConfigError(self.connector.fail(
                f"cannot create publication {self.publication}: {' '.join(str(exc).split())}; the source user must "
                f"own {table.schema}.{table.name} (or an administrator runs CREATE PUBLICATION \"{self.publication}\" "
                f"FOR TABLE {table.quoted})")) from exc
        return missing

    def drop_publication(self) -> None:
        self._query(f'DROP PUBLICATION IF EXISTS "{self.publication}"')

    # --- the slot -----------------------------------------------------------------------------------------

    def slots(self, *, prefix: str | None = None) -> list[SlotInfo]:
        """This slot (or every slot whose name starts with prefix) with the WAL it holds back on the server."""
        where, param = ("slot_name = %s", self.slot) if prefix is None else ("slot_name LIKE %s", prefix + "\\_%")
        rows = self._query(
            f"""SELECT slot_name, database, active, restart_lsn::text, confirmed_flush_lsn::text, wal_status,
                       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
                FROM pg_replication_slots WHERE slot_type = 'logical' AND {where} ORDER BY slot_name""", (param,))
        return [SlotInfo(*row) for row in rows]

    def slot_info(self) -> SlotInfo | None:
        found = self.slots()
        return found[0] if found else None

    def drop_slot(self) -> None:
        try:
            self._query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (self.slot,))
        except psycopg2.errors.ObjectInUse as exc:
            raise RetriableError(self.connector.fail(
                f"slot {self.slot} is in use by another run; wait for it to finish and retry")) from exc

    def advance(self, lsn: int) -> None:
        """Confirm to the server that everything committed before lsn is published: it may recycle that WAL."""
        info = self.slot_info()
        if info is None or (info.confirmed_flush_lsn and lsn_int(info.confirmed_flush_lsn) >= lsn):
            return
        try:
            self._query("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(lsn)))
        except psycopg2.Error as exc:
            raise RetriableError(self.connector.fail(
                f"cannot confirm {lsn_text(lsn)} to slot {self.slot}: {' '.join(str(exc).split())}; the next run "
                "re-reads those changes (merged by key, nothing duplicated)")) from exc

    # --- the initial snapshot -----------------------------------------------------------------------------

    @contextmanager
    def create_slot_with_snapshot(self, table: CapturedTable, *, batch_rows: int) -> Iterator[tuple[int, Iterator[pa.RecordBatch]]]:
        """Create the slot and read the table in the snapshot it exports: (consistent LSN, batches)."""
        replication = self._replication(table.forms.options)
        try:
            with replication.cursor() as cursor:
                try:
                    cursor.execute(f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT')
                except psycopg2.Error as exc:
                    raise ConfigError(self.connector.fail(
                        f"cannot create replication slot {self.slot}: {' '.join(str(exc).split())} (the source user "
                        "needs REPLICATION; max_replication_slots must leave a free slot)")) from exc
                _name, consistent_point, snapshot, _plugin = cursor.fetchone()
            # The exported snapshot lives as long as the replication connection stays open and idle.
            reader = self._connect(table.forms.options)
            try:
                reader.set_session(isolation_level="REPEATABLE READ", readonly=True)
                with reader.cursor() as cursor:
                    cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
                yield lsn_int(consistent_point), self._read_table(reader, table, batch_rows)
            finally:
                reader.close()
        finally:
            replication.close()

    def _read_table(self, conn, table: CapturedTable, batch_rows: int) -> Iterator[pa.RecordBatch]:  # noqa: ANN001
        with conn.cursor(name="govshare_cdc_snapshot") as cursor:
            cursor.itersize = batch_rows
            cursor.execute(f"SELECT {table.snapshot_columns} FROM {table.quoted}")
            yielded = False
            while rows := cursor.fetchmany(batch_rows):
                yielded = True
                yield table.to_batch([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                                      for row in rows])
            if not yielded:
                yield table.to_batch([])

    # --- the change stream --------------------------------------------------------------------------------

    def collect(self, table: CapturedTable, *, after: int, max_changes: int, wait_seconds: float) -> Collected:
        """Stream the slot until caught up with the server (or max_changes at a transaction end), collapsing
        the changes by key. Transactions committed before `after` were published already and are skipped."""
        target = lsn_int(self._query("SELECT pg_current_wal_flush_lsn()::text")[0][0])
        key_positions = [[c.name for c in table.columns].index(k) for k in table.primary_key]
        collected = Collected()
        with closing(self._replication(table.forms.options)) as replication, replication.cursor() as cursor:
            try:
                cursor.start_replication(slot_name=self.slot, decode=False, start_lsn=0, status_interval=5,
                                         options={"proto_version": "1", "publication_names": self.publication})
            except psycopg2.Error as exc:
                reason = " ".join(str(exc).split())
                if "is active" in reason:
                    raise RetriableError(self.connector.fail(f"slot {self.slot} is read by another run: {reason}")) from exc
                raise RetriableError(self.connector.fail(f"cannot start replication from {self.slot}: {reason}")) from exc
            deadline, last_ping = time.monotonic() + wait_seconds, 0.0
            in_transaction, skipping = False, False
            while True:
                message = cursor.read_message()
                if message is None:
                    caught_up = cursor.wal_end >= target
                    if not in_transaction and (caught_up or time.monotonic() > deadline):
                        if caught_up:  # nothing before wal_end is pending: it is a safe position to confirm
                            collected.position = max(collected.position or 0, cursor.wal_end, after)
                        break
                    if time.monotonic() - last_ping > 0.5:  # ask for a keepalive: it carries the server's position
                        cursor.send_feedback(reply=True)
                        last_ping = time.monotonic()
                    select.select([cursor], [], [], 0.2)
                    continue
                item = decode(message.payload)
                if isinstance(item, Begin):
                    in_transaction, skipping = True, item.final_lsn < after
                elif isinstance(item, Commit):
                    in_transaction = False
                    if skipping:
                        collected.skipped += 1
                    else:
                        collected.transactions += 1
                        collected.position = item.end_lsn
                        if collected.changes >= max_changes:
                            break
                elif isinstance(item, Relation):
                    self._check_relation(item, table)
                elif skipping:
                    continue
                elif isinstance(item, Change):
                    collected.changes += 1
                    collapse(collected, item, key_positions)
                elif isinstance(item, Truncate):
                    collected.changes += 1
                    collected.rows.clear()
                    collected.truncated = True
        return collected

    def _check_relation(self, relation: Relation, table: CapturedTable) -> None:
        expected = [c.name for c in table.columns]
        if (relation.namespace, relation.name) != (table.schema, table.name):
            raise FatalError(f"slot {self.slot} carries changes of {relation.qualified}, not {table.schema}.{table.name}; "
                             f"drop the publication {self.publication} and run `govshare sync --full`")
        if relation.columns != expected:
            added = [c for c in relation.columns if c not in expected]
            dropped = [c for c in expected if c not in relation.columns]
            raise StreamSchemaChanged(
                f"the columns of {table.schema}.{table.name} changed while capturing (added: "
                f"{', '.join(added) or '-'}; dropped: {', '.join(dropped) or '-'}): the table is read again")
