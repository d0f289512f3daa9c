"""Tables other engines change too: a column another writer renamed is refused by its old
name, never added again; columns they add and partition specs they change keep working.
Real files, the SQLite catalog, the other writer being PyIceberg on the same catalog."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import load_routes
from lakeroute.core.shape.tables import ensure_declared_tables

from tests.integration.test_cli import run
from tests.support.workspace import Workspace


def _put(ws: Workspace, key: str, rows: list[dict[str, Any]]) -> str:
    ws.put("bkt", key, pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.int64()), ("amt", pa.float64())])))
    return key


def _rename(ws: Workspace, table: str, old: str, new: str) -> None:
    """Another writer renames a column (same field id, new name)."""
    with ws.catalog().load_table(table).update_schema() as update:
        update.rename_column(old, new)


def _columns(ws: Workspace, table: str) -> list[str]:
    return [f.name for f in ws.catalog().load_table(table).schema().fields]


TARGETS = {
    "evolve-append": {"table": "ns.t"},
    "evolve-upsert": {"table": "ns.t", "mode": "upsert", "key": ["id"]},
    "strict": {"table": "ns.t", "schema": "strict"},
    "rescue": {"table": "ns.t", "schema": "rescue"},
    "declared-evolve": {"table": "ns.t", "schema": "evolve", "columns": {"id": "long", "amt": "double"}},
}


@pytest.mark.parametrize("kind", list(TARGETS))
def test_a_column_renamed_by_another_writer_is_refused_by_its_old_name_never_added(
        ws: Workspace, kind: str) -> None:
    target = TARGETS[kind]
    ws.route("r", {"bucket": "bkt"}, target, "SELECT id, amt FROM source")
    assert ws.ingest(("bkt", _put(ws, "1.parquet", [{"id": 1, "amt": 1.0}, {"id": 2, "amt": 2.0}]))
                     ).count("committed") == 1
    _rename(ws, "ns.t", "amt", "amount")
    before = _columns(ws, "ns.t")
    _put(ws, "2.parquet", [{"id": 2, "amt": 5.0}, {"id": 3, "amt": 6.0}])
    code, out, err = run(ws, "preview", "r", str(ws.paths.landing / "bkt" / "2.parquet"))
    said = out + err  # preview says what ingest will do
    assert code == 1 and ("'amt' (now 'amount')" in said or "renamed to 'amount'" in said), said
    [o] = ws.ingest(("bkt", "2.parquet")).outcomes
    print(kind, o.status, o.message)
    assert o.status == "quarantined" and o.stage == "schema"
    assert "'amt'" in o.message and "'amount'" in o.message and "amt AS amount" in o.message, o.message
    assert "amt" not in _columns(ws, "ns.t") and _columns(ws, "ns.t") == before, "no column added"
    if "columns" in target:  # the route declares the old name: sync says so too, changes nothing
        with pytest.raises(ConfigError, match="renamed to 'amount'"):
            ensure_declared_tables(ws.catalog(), load_routes(ws.paths.routes), plan=True)
        target = {**target, "columns": {"id": "long", "amount": "double"}}
    # the fix the message names: select it by its new name
    ws.route("r", {"bucket": "bkt"}, target, "SELECT id, amt AS amount FROM source")
    assert ws.ingest(("bkt", "2.parquet")).count("committed") == 1
    rows = sorted((r["id"], r["amount"]) for r in ws.rows("ns.t"))
    if kind == "evolve-upsert":
        assert rows == [(1, 1.0), (2, 5.0), (3, 6.0)], "upserted keys keep their amount"
    else:
        assert rows == [(1, 1.0), (2, 2.0), (2, 5.0), (3, 6.0)]


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_rename_between_staging_and_commit_reads_the_object_again_then_refuses_it(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Staged under the old schema, committed under the renamed one: the commit sends the
    object back (read again), never adds the old name; read again, it is refused."""
    from lakeroute.core.pipeline import ingest as ingest_mod

    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t", "mode": mode, **({"key": ["id"]} if mode == "upsert" else {})},
             "SELECT id, amt FROM source")
    assert ws.ingest(("bkt", _put(ws, "1.parquet", [{"id": 1, "amt": 1.0}]))).count("committed") == 1
    real = ingest_mod.commit

    def renamed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        _rename(ws, "ns.t", "amt", "amount")
        monkeypatch.setattr(ingest_mod, "commit", real)
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_mod, "commit", renamed_meanwhile)
    [o] = ws.ingest(("bkt", _put(ws, "2.parquet", [{"id": 2, "amt": 5.0}]))).outcomes
    print(o.status, o.message)
    assert o.status == "failed" and "will be read again" in o.message
    assert _columns(ws, "ns.t") == ["id", "amount"]
    [o] = ws.ingest(("bkt", "2.parquet")).outcomes
    assert o.status == "quarantined" and "'amt' (now 'amount')" in o.message
    assert _columns(ws, "ns.t") == ["id", "amount"] and len(ws.rows("ns.t")) == 1
    assert not [p for p in ws.paths.warehouse.rglob("*.parquet")
                if p.name not in {f.file_path.rsplit("/", 1)[-1] for f in _live(ws)}], "no staged file left"


def _live(ws: Workspace) -> list[Any]:
    table = ws.catalog().load_table("ns.t")
    snap = table.current_snapshot()
    assert snap is not None
    return [e.data_file for m in snap.manifests(table.io) for e in m.fetch_manifest_entry(table.io)]


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_columns_another_writer_added_keep_working(ws: Workspace, mode: str) -> None:
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t", "mode": mode, **({"key": ["id"]} if mode == "upsert" else {})},
             "SELECT id, amt FROM source")
    assert ws.ingest(("bkt", _put(ws, "1.parquet", [{"id": 1, "amt": 1.0}]))).count("committed") == 1
    from pyiceberg.types import StringType

    table = ws.catalog().load_table("ns.t")
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = ws.catalog().load_table("ns.t")
    table.append(pa.table({"id": pa.array([9], pa.int64()), "amt": [9.0], "note": ["theirs"]},
                          schema=table.schema().as_arrow()))
    report = ws.ingest(("bkt", _put(ws, "2.parquet", [{"id": 1, "amt": 2.0}, {"id": 3, "amt": 3.0}])))
    assert report.count("committed") == 1, [o.message for o in report.outcomes]
    rows = sorted((r["id"], r["amt"], r["note"]) for r in ws.rows("ns.t"))
    want = [(1, 2.0, None), (3, 3.0, None), (9, 9.0, "theirs")]
    assert rows == (want if mode == "upsert" else [(1, 1.0, None), *want])


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_partition_spec_another_writer_changed_keeps_working(ws: Workspace, mode: str) -> None:
    from pyiceberg.transforms import BucketTransform

    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t", "mode": mode, **({"key": ["id"]} if mode == "upsert" else {})},
             "SELECT id, amt FROM source")
    assert ws.ingest(("bkt", _put(ws, "1.parquet", [{"id": i, "amt": 1.0} for i in range(4)]))
                     ).count("committed") == 1
    with ws.catalog().load_table("ns.t").update_spec() as spec:
        spec.add_field("id", BucketTransform(2), "id_bucket")
    report = ws.ingest(("bkt", _put(ws, "2.parquet", [{"id": i, "amt": 2.0} for i in range(2, 6)])))
    assert report.count("committed") == 1, [o.message for o in report.outcomes]
    table = ws.catalog().load_table("ns.t")
    new_files = [f for f in _live(ws) if f.spec_id == table.spec().spec_id]
    assert new_files and all(f.partition[0] in (0, 1) for f in new_files), "written under the new spec"
    rows = sorted((r["id"], r["amt"]) for r in ws.rows("ns.t"))
    if mode == "upsert":
        assert rows == [(0, 1.0), (1, 1.0), (2, 2.0), (3, 2.0), (4, 2.0), (5, 2.0)]
    else:
        assert len(rows) == 8
