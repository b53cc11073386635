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

ALTER COLUMN ... TYPE to the very type the column has, with a USING expression (``TYPE int USING n * 2``), leaves
the catalogue's types as they were: it changes the table's storage (relfilenode) and the column's catalogue entry
(its pg_attribute xmin), and the run reads a snapshot when both changed. Either alone changes no row unseen
(VACUUM FULL, CLUSTER and TRUNCATE give new storage; a default or statistics target set rewrites the entry), so it
costs no snapshot; both between two runs (a default set, then a VACUUM FULL) cost one that was not needed.
A rewrite also writes the entry of each column whose default, given by ADD COLUMN ... DEFAULT, was held in the
catalogue (atthasmissing) and is now put into the rows; such an entry is discounted when its default's row
(pg_attrdef) is the one recorded (a USING retype stores the default again), where VACUUM FULL after an added
column had cost a needless snapshot.

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
    if recorded is None:
        return None
    if all(recorded.get(part) == current.get(part) for part in ("oid", "columns")):
        return _rewritten_in_place(recorded=recorded, current=current, table=table)
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


def _rewritten_in_place(*, recorded: dict[str, Any], current: dict[str, Any], table: str) -> str | None:
    """A column retyped to its own type with USING: new storage and that column's entry written again (see above);
    None for a state recorded before the storage was kept (it records it, as an old state records the identity)."""
    if recorded.get("storage") is None or recorded.get("storage") == current.get("storage"):
        return None
    before = recorded.get("altered") or {}
    altered = [name for name, written in current.get("altered", {}).items()
               if before.get(name) != written and not _default_written_out(name, recorded=recorded, current=current)]
    if not altered:
        return None
    return (f"表 {table} 已在源端原地重写（变更的列：{', '.join(altered)}），重新快照 / {table} was rewritten in place "
            f"with column(s) {', '.join(altered)} altered (ALTER COLUMN ... TYPE ... USING to the type they have): "
            "every row was rewritten without a change in the slot")


def _default_written_out(name: str, *, recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """The column's entry was written only because a rewrite (VACUUM FULL, CLUSTER) put the default it held
    (added with ADD COLUMN ... DEFAULT, atthasmissing) into the rows and cleared it: no row changed. A retype with
    USING clears it too but stores the column's default again (a new pg_attrdef row), so it still counts."""
    held = recorded.get("missing") or {}
    return (name in held and name not in (current.get("missing") or {})
            and held[name] is not None and held[name] == (current.get("defaults") or {}).get(name))
