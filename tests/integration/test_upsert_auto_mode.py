"""Auto upsert mode: no ``write.merge.mode``/``write.update.mode`` declared, lakeroute chooses
per commit between copy-on-write and merge-on-read (``core.write.merge_on_read.choose_mode``),
on real files and the SQLite catalog. A batch whose keys span the table deletes by position; a
batch in one file's key range rewrites that file; a declared ``copy-on-write`` and a v1 table
never get a delete file; maintenance folds the delete files; the rows equal a DuckDB truth
(PyIceberg and DuckDB's ``iceberg_scan`` both)."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
from lakeroute.core.write.merge_on_read import AUTO_MIN_BYTES, AUTO_ROWS_PER_BATCH_ROW, BYTES_PROPERTY
from typer.testing import CliRunner

from tests.integration.test_merge_on_read import SCHEMA, live_files, truth
from tests.integration.test_write_modes import summary, table_rows
from tests.support.workspace import Workspace

MIN_BYTES = 128 << 10  # the tables here are small: the threshold in bytes is set (as a route may)
DEFAULTS: dict[str, Any] = {"table": "crm.deals", "mode": "upsert", "key": ["id"], "order_by": "ts",
                            "operation": {"column": "op", "delete": ["D"]}}
AUTO: dict[str, Any] = {**DEFAULTS, "properties": {BYTES_PROPERTY: str(MIN_BYTES)}}
FILES, PER_FILE = 4, 8_000  # the base: 4 files of contiguous, disjoint key ranges


def put(ws: Workspace, key: str, ids: list[int], ts: int, seed: int, deletes: float = 0.0) -> str:
    """Rows of ``ids`` with random 40-character values (they do not compress: the table's
    bytes pass the auto threshold), ``deletes`` of them CDC deletes."""
    rng = random.Random(seed)
    ops = ["D" if rng.random() < deletes else "U" for _ in ids]
    rows = pa.table({"id": pa.array(ids, pa.int64()), "ts": pa.array([ts] * len(ids), pa.int64()),
                     "v": pa.array([rng.randbytes(20).hex() for _ in ids]), "op": pa.array(ops)}, schema=SCHEMA)
    ws.put("land", key, rows)
    return key


def base(ws: Workspace, target: dict[str, Any] = AUTO) -> list[str]:
    """The base table: one commit per file-sized object of contiguous ids (a new key range
    each: no file to rewrite, so each lands as its own file)."""
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, target)
    keys = []
    for i in range(FILES):
        keys.append(put(ws, f"deals/base-{i}.parquet", list(range(i * PER_FILE, (i + 1) * PER_FILE)), 0, i))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
    t = ws.catalog().load_table("crm.deals")
    files = t.inspect.files().to_pylist()
    assert len(files) == FILES and sum(f["file_size_in_bytes"] for f in files) >= MIN_BYTES, \
        "the base must be worth merge-on-read to test the choice"
    return keys


def full_range(ws: Workspace, key: str, n: int, ts: int, seed: int, deletes: float = 0.0) -> str:
    """``n`` keys spread over the whole key range (and past it): copy-on-write would rewrite
    every file, far more than ``AUTO_ROWS_PER_BATCH_ROW`` rows per batch row."""
    assert AUTO_ROWS_PER_BATCH_ROW * n < FILES * PER_FILE
    ids = random.Random(seed).sample(range(FILES * PER_FILE + n), n)
    return put(ws, key, ids, ts, seed, deletes)


def test_a_full_range_batch_deletes_by_position_without_declaring_it(ws: Workspace) -> None:
    keys = base(ws)
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 7))
    report = ws.ingest(("land", keys[-1]))
    assert report.count("committed") == 1
    s = summary(ws, "crm.deals")
    assert s["lakeroute.upsert-mode"] == "merge-on-read", s
    assert s["lakeroute.upsert-mode-reason"].startswith("auto: copy-on-write would rewrite 4 file(s)"), s
    assert int(s["added-delete-files"]) == int(s["lakeroute.upsert-delete-files"]) == FILES
    assert "deleted-data-files" not in s, "no data file was rewritten"
    [commit] = report.commits
    assert commit["upsert_mode"] == "merge-on-read" and commit["upsert_mode_reason"].startswith("auto")
    props = ws.catalog().load_table("crm.deals").metadata.properties
    assert not {"write.merge.mode", "write.update.mode"} & set(props), "auto mode declares nothing on the table"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_by_default_a_table_under_the_bytes_threshold_stays_copy_on_write(ws: Workspace) -> None:
    """The same full-range batch without the route's threshold: the table's files hold less
    than the default AUTO_MIN_BYTES, whose rewrite costs less than a delete file is worth."""
    keys = base(ws, DEFAULTS)
    assert sum(f["file_size_in_bytes"] for f in ws.catalog().load_table("crm.deals").inspect.files().to_pylist()
               ) < AUTO_MIN_BYTES
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 7))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    s = summary(ws, "crm.deals")
    assert s["lakeroute.upsert-mode"] == "copy-on-write", s
    assert s["lakeroute.upsert-mode-reason"].startswith("auto: copy-on-write would rewrite 4 file(s)"), s
    assert live_files(ws, "crm.deals")[1] == 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_a_narrow_batch_on_a_clustered_table_rewrites_its_file_and_writes_no_delete_file(ws: Workspace) -> None:
    keys = base(ws)
    before, _ = live_files(ws, "crm.deals")
    # keys of the second file's range only, a third of its rows: copy-on-write rewrites
    # 3x the batch's rows (under the threshold)
    ids = random.Random(3).sample(range(PER_FILE, 2 * PER_FILE), PER_FILE // 3)
    keys.append(put(ws, "deals/narrow.parquet", ids, 1, 3))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    s = summary(ws, "crm.deals")
    assert s["lakeroute.upsert-mode"] == "copy-on-write", s
    assert s["lakeroute.upsert-files-read"] == "1" and s["deleted-data-files"] == "1", s
    after, deletes = live_files(ws, "crm.deals")
    assert deletes == 0 and len(before - after) == 1, "only the file of the batch's keys was rewritten"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_a_route_declaring_copy_on_write_never_gets_a_delete_file(ws: Workspace) -> None:
    keys = base(ws, {**AUTO, "properties": {**AUTO["properties"], "write.merge.mode": "copy-on-write"}})
    for step in range(2):
        keys.append(full_range(ws, f"deals/full-{step}.parquet", 1000, step + 1, step, deletes=0.1))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
        s = summary(ws, "crm.deals")
        assert (s["lakeroute.upsert-mode"], s["lakeroute.upsert-mode-reason"]) == (
            "copy-on-write", "declared by the route"), s
        assert live_files(ws, "crm.deals")[1] == 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_a_table_declaring_copy_on_write_never_gets_a_delete_file(ws: Workspace) -> None:
    """Set on the table by another engine (or by hand): the table's declaration wins too."""
    keys = base(ws)
    with ws.catalog().load_table("crm.deals").transaction() as txn:
        txn.set_properties({"write.update.mode": "copy-on-write"})
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 5))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    s = summary(ws, "crm.deals")
    assert (s["lakeroute.upsert-mode"], s["lakeroute.upsert-mode-reason"]) == (
        "copy-on-write", "declared by the table"), s
    assert live_files(ws, "crm.deals")[1] == 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_a_v1_table_never_gets_a_delete_file(ws: Workspace) -> None:
    keys = base(ws, {**AUTO, "properties": {**AUTO["properties"], "format-version": "1"}})
    assert ws.catalog().load_table("crm.deals").metadata.format_version == 1
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 11))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    s = summary(ws, "crm.deals")
    assert (s["lakeroute.upsert-mode"], s["lakeroute.upsert-mode-reason"]) == (
        "copy-on-write", "auto: format version 1 (position deletes are v2 only)"), s
    assert live_files(ws, "crm.deals")[1] == 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def _mixed(ws: Workspace) -> list[str]:
    """The base, then full-range and narrow upserts with CDC deletes, some arriving late
    (older ``ts`` than the rows they meet): both modes are chosen along the way."""
    keys = base(ws)
    modes = []
    rng = random.Random(99)
    for step in range(4):
        if step % 2 == 0:
            keys.append(full_range(ws, f"deals/mix-{step}.parquet", 800, rng.choice([1, 5, 9]), step, 0.2))
        else:
            ids = rng.sample(range(2 * PER_FILE, 3 * PER_FILE), PER_FILE // 2)
            keys.append(put(ws, f"deals/mix-{step}.parquet", ids, rng.choice([2, 6]), step, 0.2))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
        modes.append(summary(ws, "crm.deals")["lakeroute.upsert-mode"])
        assert table_rows(ws, "crm.deals") == truth(ws, keys)
    assert set(modes) == {"copy-on-write", "merge-on-read"}, modes
    assert live_files(ws, "crm.deals")[1] > 0
    return keys


def test_mixed_auto_upserts_and_cdc_deletes_equal_the_truth(ws: Workspace) -> None:
    keys = _mixed(ws)
    again = ws.ingest(("land", keys[-1]), ("land", keys[-2]))  # redelivery: exactly once
    assert again.count("skipped") == 2
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_lakeroute_maintain_folds_the_auto_delete_files(ws: Workspace) -> None:
    from lakeroute.cli import app

    keys = _mixed(ws)
    p = ws.paths
    result = CliRunner().invoke(app, ["--routes", str(p.routes), "--home", str(p.home), "--landing",
                                      str(p.landing), "maintain", "crm.deals", "--apply"])
    assert result.exit_code == 0, result.output
    assert live_files(ws, "crm.deals")[1] == 0, result.output
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_the_stage_maintenance_job_folds_the_auto_delete_files(ws: Workspace) -> None:
    """The scheduled task's job (``lakeroute.maintain.MaintenanceJob``) over the local catalog."""
    from lakeroute.core.routes import Maintenance
    from lakeroute.local.files import local_lister
    from lakeroute.local.ledger import SqliteLedger
    from lakeroute.maintain import MaintenanceJob

    keys = _mixed(ws)
    job = MaintenanceJob(ws.catalog(), SqliteLedger(str(ws.paths.home / "ledger.db")), local_lister,
                         {"crm.deals": Maintenance()})
    reports, _ = job.run()
    assert [r.table for r in reports] == ["crm.deals"] and not reports[0].error, reports
    assert live_files(ws, "crm.deals")[1] == 0, "\n".join(reports[0].lines())
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_an_overwrite_after_auto_merge_on_read_drops_the_delete_files(ws: Workspace) -> None:
    """The route changes to mode overwrite (table): the data files go, and the delete files
    auto mode wrote for them go with them."""
    keys = base(ws)
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 7))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    assert live_files(ws, "crm.deals")[1] == FILES
    ws.route("deals", {"bucket": "land", "prefix": "deals/"},
             {"table": "crm.deals", "mode": "overwrite", "overwrite": "table"}, sql="SELECT id, ts, v FROM source")
    put(ws, "deals/all.parquet", list(range(10)), 9, 1)
    assert ws.ingest(("land", "deals/all.parquet")).count("committed") == 1
    assert live_files(ws, "crm.deals")[1] == 0
    assert summary(ws, "crm.deals")["lakeroute.removed-delete-files"] == str(FILES)
    assert [r["id"] for r in table_rows(ws, "crm.deals")] == list(range(10))


def test_lakeroute_ingest_says_which_write_the_upsert_chose(ws: Workspace) -> None:
    from lakeroute.cli import app

    keys = base(ws)
    keys.append(full_range(ws, "deals/full.parquet", 1000, 1, 7))
    p = ws.paths
    result = CliRunner().invoke(app, ["--routes", str(p.routes), "--home", str(p.home), "--landing",
                                      str(p.landing), "ingest", str(p.landing / "land" / keys[-1])])
    assert result.exit_code == 0, result.output
    assert "upsert into crm.deals: merge-on-read (auto: copy-on-write would rewrite 4 file(s)" in result.output
