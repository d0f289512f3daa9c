"""Nothing lost at the edges, on the embedded default (real files, real SQLite catalog).

Each test prints what it checked. Companion to the AWS edges in test_aws_reliability.py.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard
from lakeroute.core.errors import ObjectError
from lakeroute.core.objects import SourceObject
from lakeroute.core.pipeline import ObjectRef
from lakeroute.local.objects import LocalQuarantine

from tests.support.workspace import Workspace, orders


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def _csv(n: int, start: int = 0, extra: str = "") -> bytes:
    head = "id,name" + (f",{extra}" if extra else "")
    rows = [f"{i},name-{i}" + (f",{i}" if extra else "") for i in range(start, start + n)]
    return ("\n".join([head, *rows]) + "\n").encode()


# ---------------------------------------------------------------- 1. fail closed per object

BAD_SQL = {
    "interval": "SELECT id, INTERVAL 1 DAY AS i FROM source",
    "union": "SELECT id, union_value(k := 1) AS u FROM source",
    "varint": "SELECT id, 1::VARINT AS v FROM source",
    "dupes": "SELECT id, id AS \"ID\" FROM source",
    "infinity": "SELECT id, 'infinity'::TIMESTAMP AS ts FROM source",
    "subus": "SELECT id, '2026-01-01 00:00:00.123456789'::TIMESTAMP_NS AS ts FROM source",
    "ubig": "SELECT id, 18446744073709551615::UBIGINT AS u FROM source",
    "boom": "SELECT id, error('route raised') AS x FROM source",
}


def test_one_bad_object_never_sinks_the_batch(ws: Workspace) -> None:
    """Library errors of every kind quarantine their object; the good ones commit."""
    ws.route("good", {"bucket": "bkt", "prefix": "good/"}, {"table": "ns.good"})
    for name, sql in BAD_SQL.items():
        ws.route(f"bad-{name}", {"bucket": "bkt", "prefix": f"{name}/"}, {"table": f"ns.{name}"}, sql)
        ws.put("bkt", f"{name}/x.csv", _csv(3))
    ws.route("hugeint", {"bucket": "bkt", "prefix": "huge/"}, {"table": "ns.huge"},
             "SELECT id, (id * 99999999999999999999999999999999999999)::HUGEINT AS h FROM source")
    ws.route("hugeint-over", {"bucket": "bkt", "prefix": "hugeover/"}, {"table": "ns.hugeover"},
             "SELECT id, 170141183460469231731687303715884105727::HUGEINT AS h FROM source")
    ws.route("ns-whole", {"bucket": "bkt", "prefix": "nsok/"}, {"table": "ns.nsok"},
             "SELECT id, '2026-01-01 00:00:00.123456'::TIMESTAMP_NS AS ts FROM source")
    ws.put("bkt", "good/1.csv", _csv(5))
    ws.put("bkt", "huge/1.csv", _csv(2))
    ws.put("bkt", "hugeover/1.csv", _csv(2))
    ws.put("bkt", "nsok/1.csv", _csv(2))
    refs = [("bkt", "good/1.csv"), *[("bkt", f"{n}/x.csv") for n in BAD_SQL], ("bkt", "huge/1.csv"),
            ("bkt", "hugeover/1.csv"), ("bkt", "nsok/1.csv")]
    report = ws.ingest(*refs)
    statuses = {o.ref.key.split("/")[0]: (o.status, o.stage) for o in report.outcomes}
    print("outcomes:", json.dumps(statuses))
    assert statuses["good"] == ("committed", None)
    assert statuses["huge"] == ("committed", None), "HUGEINT fits decimal(38, 0)"
    assert statuses["nsok"] == ("committed", None), "a nanosecond type with whole microseconds fits"
    assert statuses["hugeover"][0] == "quarantined", "a HUGEINT of 39 digits does not fit decimal(38, 0)"
    print("hugeint over 38 digits:", ws.record("bkt", "hugeover/1.csv")["message"])
    for name in BAD_SQL:
        assert statuses[name][0] == "quarantined", name
        rec = ws.record("bkt", f"{name}/x.csv")
        assert rec["route"] == f"bad-{name}" and rec["message"] and rec["stage"] == statuses[name][1]
        assert not ws.catalog().table_exists(f"ns.{name}"), f"{name}: a quarantined first file creates no table"
    assert statuses["interval"][1] == "schema" and statuses["dupes"][1] == "sql"
    assert "would lose data" in ws.record("bkt", "subus/x.csv")["message"]
    assert len(ws.rows("ns.good")) == 5
    assert [r["h"] for r in ws.rows("ns.huge")] == [0, 99999999999999999999999999999999999999]
    assert not list(ws.paths.home.rglob("warehouse/ns/*/data/*.parquet"))[5:], "only the good tables' files"
    stray = [p for p in ws.paths.warehouse.rglob("*.parquet")
             if p.parts[-4] in {f"{n}" for n in BAD_SQL}]
    assert stray == [], f"staged files of quarantined objects left behind: {stray}"


def test_values_that_do_not_fit_are_quarantined_not_changed(ws: Workspace) -> None:
    ws.route("t", {"bucket": "bkt"}, {"table": "ns.t", "columns": {"id": "long", "ts": "timestamp",
                                                              "amount": "decimal(6,2)"}},
             "SELECT id, ts::TIMESTAMPTZ AS ts, amount FROM source")
    ws.route("u", {"bucket": "ckt"}, {"table": "ns.u", "columns": {"id": "long", "ts": "timestamptz",
                                                              "amount": "decimal(6,2)"}},
             "SELECT id, ts::TIMESTAMPTZ AS ts, amount::DECIMAL(10,4) AS amount FROM source")
    ws.put("bkt", "tz.csv", b"id,ts,amount\n1,2026-01-01T00:00:00Z,1.25\n")
    ws.put("ckt", "ok.csv", b"id,ts,amount\n1,2026-01-01T00:00:00Z,1.25\n")
    ws.put("ckt", "lossy.csv", b"id,ts,amount\n2,2026-01-01T00:00:00Z,1.2345\n")
    report = ws.ingest(("bkt", "tz.csv"), ("ckt", "ok.csv"), ("ckt", "lossy.csv"))
    got = {o.ref.key: o.status for o in report.outcomes}
    print("outcomes:", got, [o.message for o in report.failed])
    assert got == {"tz.csv": "quarantined", "ok.csv": "committed", "lossy.csv": "quarantined"}
    assert "time zone" in ws.record("bkt", "tz.csv")["message"]
    assert [str(r["amount"]) for r in ws.rows("ns.u")] == ["1.25"]


def test_cli_user_sees_no_traceback(ws: Workspace) -> None:
    from lakeroute.cli import app
    from typer.testing import CliRunner

    ws.route("bad", {"bucket": "bkt"}, {"table": "ns.t"}, BAD_SQL["union"])
    ws.put("bkt", "x.csv", _csv(2))
    p = ws.paths
    result = CliRunner().invoke(app, ["--routes", str(p.routes), "--home", str(p.home), "--landing",
                                      str(p.landing), "ingest", str(p.landing / "bkt")])
    print("exit", result.exit_code, result.output.strip().splitlines()[-1])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "quarantined bkt/x.csv" in result.output and "[stage schema]" in result.output


# ---------------------------------------------------------------- 2. quarantine

HOSTILE_KEYS = ["d", "d/x.parquet", "a.csv", "a.csv.error.json", "a.csv/error.json",
                "a.csv/~v=0123/error.json", "k" * 246, "/".join(["seg" * 30] * 40), "nul\x00byte.csv",
                "../../etc/passwd", "./.", "", "sp ace/%41/ü.csv", "~long/x"]


def test_quarantine_never_collides_and_keeps_versions(tmp_path: Path) -> None:
    q = LocalQuarantine(tmp_path / "q")
    src = tmp_path / "src"
    src.mkdir()
    where: dict[tuple[str, str], str] = {}
    for i, key in enumerate(HOSTILE_KEYS):
        for version in ("v1", "v2"):
            f = src / f"{i}-{version}"
            f.write_bytes(f"{key!r}@{version}".encode())
            obj = SourceObject("bkt", key, str(f), f"sha256:{i}{version}", f.stat().st_size)
            where[(key, version)] = q.put("bkt", key, obj, ObjectError("read", f"bad {i}", "r"), "ns.t")
    again = q.put("bkt", "d", SourceObject("bkt", "d", str(src / "0-v1"), "sha256:0v1", 1),
                  ObjectError("sql", "second try", "r"), "ns.t")
    assert again == where[("d", "v1")]
    assert len(set(where.values())) == len(where), "every key version has its own entry"
    for (key, version), entry in where.items():
        path = Path(entry)
        assert path.is_relative_to(tmp_path / "q"), entry
        record = json.loads((path / "error.json").read_text())
        copy = next(p for p in path.iterdir() if p.name.startswith("object"))
        assert record["key"] == key and record["version"].endswith(version)
        assert copy.read_bytes() == f"{key!r}@{version}".encode()
        assert set(record) >= {"bucket", "key", "version", "route", "stage", "message", "quarantined_at",
                               "attempts", "table"}
    first = json.loads((Path(where[("d", "v1")]) / "error.json").read_text())
    assert first["attempts"] == 2 and first["message"] == "second try"
    print(f"{len(where)} entries for {len(HOSTILE_KEYS)} hostile keys x 2 versions, no collision; "
          "re-quarantine counted 2 attempts")


def test_quarantine_failure_fails_the_object_for_retry(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "bad.parquet", b"PAR1 not parquet")
    ws.put("bkt", "good.parquet", orders(2))
    ws.paths.home.mkdir(parents=True, exist_ok=True)
    ws.paths.quarantine.write_text("a file where the quarantine folder should be")
    report = ws.ingest(("bkt", "bad.parquet"), ("bkt", "good.parquet"))
    got = {o.ref.key: (o.status, o.message) for o in report.outcomes}
    print(got)
    assert got["good.parquet"][0] == "committed"
    assert got["bad.parquet"][0] == "failed" and "quarantine failed" in got["bad.parquet"][1]


# ---------------------------------------------------------------- 3. ledger vs table


def _drop(ws: Workspace, table: str) -> None:
    ws.catalog().drop_table(table)


def test_drop_and_recreate_ingests_again_once(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    for i in range(3):
        ws.put("bkt", f"{i}.parquet", orders(2, start=10 * i))
    keys = [("bkt", f"{i}.parquet") for i in range(3)]
    assert ws.ingest(*keys).count("committed") == 3
    _drop(ws, "ns.o")
    again = ws.ingest(*keys)
    third = ws.ingest(*keys)
    print("after drop:", again.count("committed"), "committed; then", third.count("skipped"), "skipped")
    assert again.count("committed") == 3 and third.count("skipped") == 3
    assert len(ws.rows("ns.o")) == 6


def test_warehouse_reset_ingests_again(ws: Workspace) -> None:
    import shutil

    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "1.parquet", orders(4))
    assert ws.ingest(("bkt", "1.parquet")).count("committed") == 1
    (ws.paths.home / "catalog.db").unlink()
    shutil.rmtree(ws.paths.warehouse)
    assert (ws.paths.home / "ledger.db").exists()
    report = ws.ingest(("bkt", "1.parquet"))
    print("after reset:", [o.status for o in report.outcomes])
    assert report.count("committed") == 1 and len(ws.rows("ns.o")) == 4


def test_rollback_reopens_only_rolled_back_objects_even_after_expiry(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    keys = [("bkt", f"{i}.parquet") for i in range(4)]
    for i, (b, k) in enumerate(keys):
        ws.put(b, k, orders(1, start=i))
        assert ws.ingest((b, k)).count("committed") == 1
    table = ws.catalog().load_table("ns.o")
    snaps = [s.snapshot_id for s in sorted(table.snapshots(), key=lambda s: s.sequence_number)]
    table.manage_snapshots().rollback_to_snapshot(snaps[1]).commit()  # 2.parquet and 3.parquet rolled back
    seen = ws.ingest(keys[0])  # lakeroute looks at the table once after the rollback
    assert seen.count("skipped") == 1
    table = ws.catalog().load_table("ns.o")
    table.maintenance.expire_snapshots().by_ids([snaps[2], snaps[3]]).commit()  # rolled back, then expired
    report = ws.ingest(*keys)
    got = {o.ref.key: o.status for o in report.outcomes}
    print("after rollback + expiry:", got)
    assert got == {"0.parquet": "skipped", "1.parquet": "skipped", "2.parquet": "committed", "3.parquet": "committed"}
    assert sorted(r["id"] for r in ws.rows("ns.o")) == [0, 1, 2, 3]
    assert ws.ingest(*keys).count("skipped") == 4


def test_expiry_of_ancestors_keeps_objects_recorded(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    keys = [("bkt", f"{i}.parquet") for i in range(5)]
    for i, (b, k) in enumerate(keys):
        ws.put(b, k, orders(1, start=i))
        ws.ingest((b, k))
    table = ws.catalog().load_table("ns.o")
    current = table.metadata.current_snapshot_id
    old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id != current]
    table.maintenance.expire_snapshots().by_ids(old).commit()
    assert len(ws.catalog().load_table("ns.o").snapshots()) == 1
    report = ws.ingest(*keys)
    print("after expiring", len(old), "ancestors:", report.count("skipped"), "skipped")
    assert report.count("skipped") == 5 and len(ws.rows("ns.o")) == 5


# ---------------------------------------------------------------- 4. what is recorded is what was read


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_truncated_stream_quarantined_then_whole_file_lands_once(ws: Workspace, kind: str) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    data = _csv(200_000)
    packed = gzip.compress(data) if kind == "gz" else zstandard.ZstdCompressor().compress(data)
    ws.put("bkt", f"big.csv.{kind}", packed[: len(packed) // 2])
    t0 = time.perf_counter()
    first = ws.ingest(("bkt", f"big.csv.{kind}"))
    [o] = first.outcomes
    print(f"truncated .{kind}: {o.status} at stage {o.stage}: {o.message[:90]} ({time.perf_counter() - t0:.2f}s)")
    assert o.status == "quarantined" and o.stage == "read" and "truncated" in o.message
    assert not ws.catalog().table_exists("ns.o")
    ws.put("bkt", f"big.csv.{kind}", packed)
    assert ws.ingest(("bkt", f"big.csv.{kind}")).count("committed") == 1
    assert len(ws.rows("ns.o")) == 200_000


def test_version_is_the_hash_of_the_bytes_read(ws: Workspace) -> None:
    import hashlib

    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    path = ws.put("bkt", "f.csv", _csv(3))
    old_hash = "sha256:" + hashlib.sha256(_csv(3)).hexdigest()
    pipe = ws.pipeline()

    def replace_then_read(obj: SourceObject) -> SourceObject:  # another writer renames a new file over it
        tmp = path.with_name("f.csv.tmp")
        tmp.write_bytes(_csv(7, start=100))
        os.replace(tmp, path)
        return obj

    pipe.source.fetch = replace_then_read  # type: ignore[attr-defined]
    report = pipe.ingest([ObjectRef("bkt", "f.csv")])
    [o] = report.outcomes
    assert o.status == "committed" and o.source_id == f"bkt/f.csv@{old_hash}" and o.rows == 3
    report = ws.ingest(("bkt", "f.csv"))
    assert report.count("committed") == 1 and report.rows == 7

    def rewrite_in_place(obj: SourceObject) -> SourceObject:
        with open(path, "r+b") as f:  # same inode: the bytes under the reader change
            f.write(b"9")
        return obj

    ws.put("bkt", "g.csv", _csv(2, start=50))
    path = ws.paths.landing / "bkt" / "g.csv"
    pipe = ws.pipeline()
    pipe.source.fetch = rewrite_in_place  # type: ignore[attr-defined]
    [g] = pipe.ingest([ObjectRef("bkt", "g.csv")]).outcomes
    print("renamed over: recorded the bytes read; rewritten in place:", g.status, g.message)
    assert g.status == "failed" and "rewritten while being read" in g.message
    assert sorted(r["id"] for r in ws.rows("ns.o")) == [0, 1, 2, *range(100, 107)]


# ---------------------------------------------------------------- 5. nothing of a quarantined object


def test_quarantined_file_does_not_change_the_schema(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "1.csv", _csv(2))
    assert ws.ingest(("bkt", "1.csv")).count("committed") == 1
    packed = gzip.compress(_csv(50_000, extra="surprise"))
    ws.put("bkt", "2.csv.gz", packed[: len(packed) // 2])
    ws.put("bkt", "3.csv", _csv(2, start=10, extra="later"))
    report = ws.ingest(("bkt", "2.csv.gz"), ("bkt", "3.csv"))
    table = ws.catalog().load_table("ns.o")
    names = [f.name for f in table.schema().fields]
    print("statuses", [o.status for o in report.outcomes], "schema", names,
          "schemas", len(table.metadata.schemas), "snapshots", len(table.snapshots()))
    assert [o.status for o in report.outcomes] == ["quarantined", "committed"]
    assert names == ["id", "name", "later"], "the quarantined file's column never reached the table"
    assert len(table.metadata.schemas) == 2 and len(table.snapshots()) == 2


def test_interrupted_batch_leaves_no_staged_files(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "0.parquet", orders(1))
    ws.ingest(("bkt", "0.parquet"))
    before = set(ws.paths.warehouse.rglob("*.parquet"))
    for i in range(1, 4):
        ws.put("bkt", f"{i}.parquet", orders(2, start=10 * i))
    seen = []

    def stop_after_two(outcome: object) -> None:
        seen.append(outcome)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ws.pipeline().ingest([ObjectRef("bkt", f"{i}.parquet") for i in range(1, 4)], progress=stop_after_two)
    after = set(ws.paths.warehouse.rglob("*.parquet"))
    print(f"data files before {len(before)}, after the interrupt {len(after)}")
    assert after == before
    assert ws.ingest(*[("bkt", f"{i}.parquet") for i in range(1, 4)]).count("committed") == 3


# ---------------------------------------------------------------- 6. bounds


def test_route_sql_times_out_and_is_quarantined(ws: Workspace) -> None:
    ws.route("slow", {"bucket": "bkt", "timeout_seconds": 1}, {"table": "ns.slow"},
             "SELECT count(*) AS n FROM range(100000000000000)")
    ws.put("bkt", "x.csv", _csv(1))
    t0 = time.monotonic()
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    took = time.monotonic() - t0
    print(f"{o.status} at {o.stage} after {took:.1f}s: {o.message}")
    assert o.status == "quarantined" and o.stage == "timeout" and "timed out after 1 s" in o.message
    assert took < 30


def test_sql_sees_only_lineage_and_memory_is_bounded(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakeroute.core.read.reuse import LINEAGE_VARIABLES

    monkeypatch.setenv("LAKEROUTE_DUCKDB_MEMORY", "300MB")
    ws.route("v", {"bucket": "bkt"}, {"table": "ns.v"},
             "SELECT name, current_setting('memory_limit') AS mem FROM duckdb_variables()")
    ws.put("bkt", "x.csv", _csv(1))
    assert ws.ingest(("bkt", "x.csv")).count("committed") == 1
    rows = ws.rows("ns.v")
    print("variables:", sorted(r["name"] for r in rows), "memory_limit:", rows[0]["mem"])
    assert sorted(r["name"] for r in rows) == sorted(LINEAGE_VARIABLES)
    assert rows[0]["mem"] in ("286.1 MiB", "300.0 MB")


def test_filename_option_shows_the_object_not_a_scratch_path(ws: Workspace) -> None:
    ws.route("h", {"bucket": "bkt", "options": {"filename": True, "hive_partitioning": True}},
             {"table": "ns.h"}, "SELECT id, dt, filename FROM source")
    ws.put("bkt", "events/dt=2026-01-01/x.csv", _csv(2))
    assert ws.ingest(("bkt", "events/dt=2026-01-01/x.csv")).count("committed") == 1
    rows = ws.rows("ns.h")
    print(rows)
    assert {str(r["dt"]) for r in rows} == {"2026-01-01"}
    assert {r["filename"] for r in rows} == {"s3://bkt/events/dt=2026-01-01/x.csv"}


def test_scratch_is_cleaned(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    for i in range(3):
        ws.put("bkt", f"{i}.parquet", orders(1, start=i))
    ws.put("bkt", "bad.parquet", b"nope")
    ws.ingest(*[("bkt", f"{i}.parquet") for i in range(3)], ("bkt", "bad.parquet"))
    left = [p for p in (ws.paths.home / "tmp" / "objects").rglob("*") if p.is_file()]
    print("scratch files left:", left)
    assert left == []
    assert pa is not None


# ---------------------------------------------------------------- found by a hostile pass


def test_roll_forward_after_rollback_then_expiry_never_ingests_twice(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    keys = [("bkt", f"{n}.parquet") for n in "abcd"]
    for i, (b, k) in enumerate(keys):
        ws.put(b, k, orders(1, start=i))
    for ref in keys[:3]:
        ws.ingest(ref)
    table = ws.catalog().load_table("ns.o")
    s0, s1, s2 = [s.snapshot_id for s in sorted(table.snapshots(), key=lambda s: s.sequence_number)]
    table.manage_snapshots().rollback_to_snapshot(s0).commit()
    ws.ingest(keys[1], keys[2])  # b and c again, on the rolled-back branch
    ws.catalog().load_table("ns.o").manage_snapshots().set_current_snapshot(s2).commit()  # roll forward
    ws.ingest(keys[3])
    ws.catalog().load_table("ns.o").maintenance.expire_snapshots().by_ids([s0, s1]).commit()
    report = ws.ingest(*keys)
    print({o.ref.key: o.status for o in report.outcomes})
    assert report.count("skipped") == 4
    assert sorted(r["id"] for r in ws.rows("ns.o")) == [0, 1, 2, 3]


def test_names_differing_in_case_from_the_table_are_quarantined(ws: Workspace) -> None:
    ws.route("p", {"bucket": "bkt", "prefix": "p/"}, {"table": "ns.p"}, "SELECT 1::INT AS a FROM source")
    ws.route("q", {"bucket": "bkt", "prefix": "q/"}, {"table": "ns.p"}, "SELECT 4::INT AS \"A\" FROM source")
    ws.put("bkt", "p/1.csv", _csv(1))
    ws.put("bkt", "q/1.csv", _csv(1))
    report = ws.ingest(("bkt", "p/1.csv"), ("bkt", "q/1.csv"))
    got = {o.ref.key: (o.status, o.message) for o in report.outcomes}
    print(got)
    assert got["p/1.csv"][0] == "committed" and got["q/1.csv"][0] == "quarantined"
    assert "differs only in case" in got["q/1.csv"][1]
    assert [f.name for f in ws.catalog().load_table("ns.p").schema().fields] == ["a"]


@pytest.mark.parametrize("sql", ["SELECT '12:00:00+05'::TIMETZ AS t FROM source", "SELECT '101'::BIT AS b FROM source"])
def test_types_duckdb_would_change_silently_are_quarantined(ws: Workspace, sql: str) -> None:
    ws.route("t", {"bucket": "bkt"}, {"table": "ns.t"}, sql)
    ws.put("bkt", "x.csv", _csv(1))
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    print(o.status, o.message)
    assert o.status == "quarantined" and o.stage == "schema"


def test_route_sql_cannot_read_the_spill_folder(ws: Workspace) -> None:
    planted = ws.paths.home / "tmp" / "duckdb" / "planted.csv"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("secret\n1\n")
    ws.route("t", {"bucket": "bkt"}, {"table": "ns.t"}, f"SELECT * FROM read_csv('{planted}')")  # noqa: S608
    ws.route("g", {"bucket": "gkt"}, {"table": "ns.g"},
             f"SELECT count(*) AS n FROM glob('{planted.parent}/**')")  # noqa: S608
    ws.put("bkt", "x.csv", _csv(1))
    ws.put("gkt", "x.csv", _csv(1))
    report = ws.ingest(("bkt", "x.csv"), ("gkt", "x.csv"))
    got = {o.ref.bucket: o.status for o in report.outcomes}
    print(got, [o.message[:80] for o in report.failed])
    assert got["bkt"] == "quarantined"
    assert got["gkt"] == "quarantined" or ws.rows("ns.g") == [{"n": 0}]


def test_route_file_and_option_typos_are_one_line_errors(ws: Workspace, tmp_path: Path) -> None:
    from tests.integration.test_cli import run

    ws.paths.routes.mkdir(parents=True)
    (ws.paths.routes / "latin.yaml").write_bytes(b"name: latin\ndescription: Caf\xe9\nsource: {bucket: bkt}\n"
                                                  b"target: {table: ns.t}\n")
    code, _, err = run(ws, "validate")
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err
    (ws.paths.routes / "latin.yaml").unlink()
    for bad, why in ((["bucket(0, id)"], "N >= 1"), (None, "no null")):
        target = {"table": "ns.t", **({"partition_by": bad} if bad else {})}
        source = {"bucket": "bkt", **({} if bad else {"options": {"delim": [1, {"a": None}]}})}
        ws.route("r", source, target)
        code, _, err = run(ws, "validate")
        print(err.strip())
        assert code == 2 and why in err and "routes/r.yaml" in err
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t", "columns": {"a": "decimal(40,2)"}})
    code, _, err = run(ws, "validate")
    assert code == 2 and "precision of 1 to 38" in err
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t"})
    f = tmp_path / "x.csv"
    f.write_bytes(_csv(1))
    for bucket in ("", "../../../../tmp/x", "a/b"):
        code, _, err = run(ws, "ingest", str(f), "--bucket", bucket, "--key", "k.csv")
        assert code == 2 and "not a bucket name" in err, (bucket, err)


def test_environment_typos_are_configuration_errors(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.test_cli import run

    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "a.parquet", orders(1))
    for name, value in (("LAKEROUTE_DUCKDB_MEMORY", "lots"), ("LAKEROUTE_OBJECT_TIMEOUT_SECONDS", "-5")):
        monkeypatch.setenv(name, value)
        code, _, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
        print(err.strip())
        assert code == 2 and name in err
        monkeypatch.delenv(name)
    assert not ws.paths.quarantine.exists()


def test_upper_case_extensions_read_like_lower_case(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "X.CSV.GZ", gzip.compress(_csv(3)))
    [o] = ws.ingest(("bkt", "X.CSV.GZ")).outcomes
    assert o.status == "committed" and o.rows == 3
