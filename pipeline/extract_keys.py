"""A table read's work by primary key (pipeline/extract.py): repeated keys, key locators, deletes, change set.

Each is called by the read at one fixed point and needs only the key and the run's files: repeated keys are
settled once the parts are written (the newest file's row kept, else every row quarantined), sorted key
locators are built beside the parts, the scan of the source's keys for deletes (pipeline/deletes.py) is
started with the read and awaited after it, and a run that is not a layer computes its change set from its
files. Separate from the read loop, whose concern is the batches: checking, conforming and writing them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import locator
from pipeline.changes import CHANGES_FILE, ChangeSet, compute_changes
from pipeline.key_scan import key_table, without_keys
from pipeline.duplicates import FileRanks, settle_duplicates
from pipeline.extract_inputs import Inputs, Previous
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun
from pipeline.validate import duplicated_keys, duplicated_keys_in_files


def start_key_scan(staged: StagedRun, inputs: Inputs, folder: Path):  # noqa: ANN201 - BackgroundScan | None
    """An incremental run of a keyed stream whose source reads its keys alone scans them for deletes beside
    the cursor read (pipeline.deletes.BackgroundScan)."""
    if not (staged.mode == "incremental" and inputs.previous is not None and inputs.stream.primary_key
            and "key_scan" in inputs.connector.capabilities):
        return None
    from pipeline.deletes import BackgroundScan

    return BackgroundScan(connector=inputs.connector, stream=inputs.stream, parts=inputs.previous.parts,
                          key=inputs.stream.primary_key, schema=inputs.previous.schema, watch=inputs.watch,
                          scratch=folder / "keys")


def settle_keys(staged: StagedRun, folder: Path, writer: PartWriter, quarantine: QuarantineWriter,
                origins: FileRanks, key: tuple[str, ...], keys: list[pa.Array]) -> None:
    """Repeated keys (the newest file's row kept, else every row quarantined) and sorted key locators."""
    data = folder / "data"
    incremental = staged.mode == "incremental"
    located = not incremental and locator.supports(writer.schema, key)
    if located:  # sorted keys first: they also tell the duplicates, one key range at a time (bounded memory)
        build_locators(staged, folder, writer.files, key)
        dupes = locator.duplicates([folder / stem for stem in staged.locators.values()])
    elif incremental:  # the keys read are few: counted in memory
        dupes = duplicated_keys(keys)
    else:  # DuckDB over the parts, spilling to disk
        try:
            dupes = duplicated_keys_in_files([data / name for name in writer.files], key, scratch=folder / "scratch")
        finally:
            shutil.rmtree(folder / "scratch", ignore_errors=True)
    if len(dupes):
        staged.rows_superseded = settle_duplicates(data, writer.files, key, dupes, quarantine,
                                                   origins.path if origins.rows else None)
        if located:  # the parts lost rows: their positions moved
            build_locators(staged, folder, writer.files, key)


def await_deletes(staged: StagedRun, keys: list[pa.Array], scan):  # noqa: ANN001, ANN201 - BackgroundScan, KeyScan | None
    """In an incremental run, the keys deleted at the source (None when the source cannot tell them): the
    background scan's result, without the keys the run read (with the rows it read ahead for them)."""
    if scan is None:
        return None
    started = time.monotonic()
    read = pa.chunked_array(keys, type=keys[0].type).combine_chunks() if keys else pa.array([])
    found = scan.result(exclude=read)
    staged.findings["gone"] = sorted(found.watched_gone)
    # seconds: the scan's own time; waited: how long the run waited for it after its own reading
    staged.key_scan = {"source_keys": found.source_keys, "deleted": len(found.deleted), "method": found.method,
                       "ranges": found.ranges, "seconds": round(scan.seconds, 3),
                       "waited": round(time.monotonic() - started, 3)}
    return found


def withheld_keys(withheld: list[pa.Array], read: list[pa.Array], key: tuple[str, ...],
                  schema: pa.Schema) -> pa.Array | None:
    """An incremental run's keys whose new state it quarantined (``withheld``: the failing rows' keys) and
    that no good row it read replaces, in the published version's key type (``schema``): their published rows
    are withdrawn (撤下旧值), as a full read of the same table publishes none for them. None: no such key."""
    if not withheld:
        return None
    target = schema.field(key[0]).type if len(key) == 1 else pa.string()
    held = []
    for keys in withheld:
        try:
            held.append(keys.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a key no published row can hold: none to withdraw
            continue
    if not held:
        return None
    held = pc.unique(pa.concat_arrays(held))
    if read:
        held = without_keys(held, pa.chunked_array(read, type=read[0].type).combine_chunks())
    return held if len(held) else None


def build_locators(staged: StagedRun, folder: Path, names: list[str], key: tuple[str, ...]) -> None:
    """A sorted key file beside each part the run wrote (names under data/), so later incremental runs find
    keys by bisection."""
    for name in names:
        part = f"data/{name}"
        stem = locator.locator_name(part)
        locator.build(folder / part, key[0], folder / stem)
        staged.locators[part] = stem


def change_set(staged: StagedRun, folder: Path, schema: pa.Schema, key: tuple[str, ...],
               previous: Previous | None, read_keys: pa.Table | None, deleted: pa.Array | None,
               withheld: pa.Array | None = None) -> dict:
    """The change set of a run that did not begin as a layer (a stacked run's comes with its layer, compacted
    or not). ``withheld`` (withheld_keys): deletes too, though not found by a key scan."""
    if previous is None:
        return ChangeSet(since_version=None, inserted=staged.rows_staged, deletes_detected=True,
                         note="first version: every row is new").summary()
    if not key:
        return ChangeSet(since_version=previous.number, note="no primary key: changes are not tracked by key; "
                         "take the whole version").summary()
    if staged.mode == "incremental" and read_keys is None:  # nothing read: nothing changed
        read_keys = pa.table({k: pa.array([], schema.field(k).type) for k in key})
    gone = None
    if staged.mode == "incremental" and deleted is not None:
        gone = key_table(deleted, key, previous.schema)
    held = key_table(withheld, key, previous.schema) if staged.mode == "incremental" and withheld is not None \
        else None
    return compute_changes(new_files=[folder / f for f in staged.files], previous_parts=previous.parts, key=key,
                           schema=schema, previous_schema=previous.schema, out=folder / CHANGES_FILE,
                           since_version=previous.number, read_keys=read_keys, deleted_keys=gone,
                           withheld_keys=held, scratch=folder / "tmp").summary()
