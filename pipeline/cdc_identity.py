"""Whether a change-captured table is still the table its published version was read from (源表标识).

Some source changes set values in rows without one change in the slot and without a difference in the table's
columns (names, types, order), so neither the slot nor the column check (pipeline.cdc_layer.snapshot_reason)
sees them: the last column dropped and added again with another default (every row takes the default), a table
rebuilt in the same column order and put back in its publication in the same transaction (the rows were copied
in), a column retyped in place (ALTER COLUMN ... TYPE ... USING rewrites every row). Each run had said "no
change", and the version stayed stale for good.

The table's identity (connectors.postgres_catalog.table_identity: pg_class oid, each column's attnum, type oid
and typmod) is kept with the cdc cursor state (cursor_states.source_identity), written by the transaction that
writes the position: the publish of a version, of a snapshot that changed nothing, or a quiet run's move. A run
that finds it changed reads a snapshot, its reason recorded (audit event cdc.snapshot, the manifest's watermark).

Not seen: ALTER COLUMN ... TYPE to the very type the column has, with a USING expression (a rewrite that leaves
the catalogue as it was; only the table's storage, relfilenode, changes, and VACUUM FULL, CLUSTER and TRUNCATE
change that too without changing a row unseen). Such a migration is followed by `govshare sync CODE --full`.

Upgrading (decision): a cursor state from before the identity was kept has none. Its next run records it,
quiet or not, without a snapshot: such a state was written by a run that checked the columns as before, and the
changes this check adds are rare migrations an operator knows of (`--full` reads the table again); a snapshot of
every change-captured table at once on upgrade would cost more than the risk it removes.
"""

from __future__ import annotations

from typing import Any


def identity_reason(*, recorded: dict[str, Any] | None, current: dict[str, Any], table: str) -> str | None:
    """Why the table is no longer the one the published version was read from, so the run reads a snapshot;
    None when it is, or when ``recorded`` is None (a state from before the identity was kept: see above)."""
    if recorded is None or recorded == current:
        return None
    if recorded.get("oid") != current.get("oid"):
        return (f"表 {table} 已重建，重新快照 / table {table} was rebuilt (pg_class oid {recorded.get('oid')}, now "
                f"{current.get('oid')}): its rows were written without a change in the slot")
    before = {name: (attnum, typid, typmod) for name, attnum, typid, typmod in recorded.get("columns", [])}
    now = {name: (attnum, typid, typmod) for name, attnum, typid, typmod in current.get("columns", [])}
    readded = [name for name in now if name in before and now[name][0] != before[name][0]]
    if readded:
        moves = ", ".join(f"{name} attnum {before[name][0]} -> {now[name][0]}" for name in readded)
        return (f"列 {', '.join(readded)} 已删除后重新添加，重新快照 / column(s) of {table} were dropped and added again "
                f"({moves}): every row took a value without a change in the slot")
    retyped = [name for name in now if name in before and now[name][1:] != before[name][1:]]
    if retyped:
        return (f"列 {', '.join(retyped)} 的类型已在源端变更，重新快照 / column(s) {', '.join(retyped)} of {table} "
                "changed type at the source (ALTER COLUMN ... TYPE): every row was rewritten without a change in the slot")
    return (f"表 {table} 的列已变化，重新快照 / the columns of {table} changed (added: "
            f"{', '.join(sorted(set(now) - set(before))) or '-'}; dropped: {', '.join(sorted(set(before) - set(now))) or '-'})")
