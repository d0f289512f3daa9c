"""Hostile object keys are data, never SQL: correct rows, right `_source_key`, nothing executed."""

from __future__ import annotations

from pathlib import Path

from tests.support.workspace import Workspace, orders

HOSTILE_KEYS = [
    "space in name.parquet",
    "a+b.parquet",
    "a%2Bb.parquet",
    "100%.parquet",
    "%%%.parquet",
    "it's.parquet",
    "''.parquet",
    '"double".parquet',
    "back`tick`.parquet",
    "ünïcødé.parquet",
    "日本語/データ.parquet",
    "emoji 🚀.parquet",
    "hash#frag.parquet",
    "question?x=1.parquet",
    "amp&semi;.parquet",
    "x'); COPY (SELECT 1) TO 'p.csv'; --.parquet",
    "'; DROP TABLE ns.h; --.parquet",
    "$(touch pwned).parquet",
    "{s3_input_path}.parquet",
    "{0}{1}.parquet",
    "getvariable('x').parquet",
    "new\nline.parquet",
    "tab\there.parquet",
    "back\\slash.parquet",
    "dir with spaces/and 'quotes'/f.parquet",
    "very-long-" + "x" * 200 + ".parquet",
    "trailing space .parquet",
]


def test_hostile_keys(ws: Workspace, tmp_path: Path) -> None:
    ws.route("any", {"bucket": "hostile"}, {"table": "ns.h"},
             "SELECT *, getvariable('source_key') AS _source_key, getvariable('source_uri') AS _uri FROM source")
    for i, key in enumerate(HOSTILE_KEYS):
        ws.put("hostile", key, orders(2, start=2 * i))
    report = ws.ingest(*[("hostile", k) for k in HOSTILE_KEYS])
    rows = ws.rows("ns.h")
    by_key = {}
    for r in rows:
        by_key.setdefault(r["_source_key"], []).append(r["id"])
    print(f"\n[hostile keys] keys={len(HOSTILE_KEYS)} committed={report.count('committed')} rows={len(rows)} "
          f"failed={len(report.failed)} commits={len(report.commits)}")
    assert not report.failed, [o.message for o in report.failed]
    assert len(HOSTILE_KEYS) >= 25
    assert set(by_key) == set(HOSTILE_KEYS)
    for i, key in enumerate(HOSTILE_KEYS):
        assert sorted(by_key[key]) == [2 * i, 2 * i + 1], key
    assert {r["_uri"] for r in rows} == {f"s3://hostile/{k}" for k in HOSTILE_KEYS}
    assert not list(tmp_path.rglob("p.csv")) and not list(Path.cwd().glob("p.csv"))
    assert not Path("pwned").exists()
    assert ws.catalog().table_exists("ns.h")
