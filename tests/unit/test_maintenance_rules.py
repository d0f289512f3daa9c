"""Maintenance decisions as pure functions: bin packing, which snapshots expire, when the
automatic expiry is due, one spelling per file path."""

from __future__ import annotations

from types import SimpleNamespace

from lakeroute.core.maintain.compaction import pack
from lakeroute.core.maintain.expiry import DAY_MS, due, plan_expiry
from lakeroute.core.maintain.references import canonical

NOW = 1_800_000_000_000


def file(size: int) -> SimpleNamespace:
    return SimpleNamespace(file_size_in_bytes=size)


def test_pack_first_fit_decreasing_drops_single_file_bins() -> None:
    bins = pack([file(x) for x in (5, 5, 5, 90, 30, 60, 2, 100)], 100)
    assert [[f.file_size_in_bytes for f in b] for b in bins] == [[90, 5, 5], [60, 30, 5, 2]]
    assert all(sum(f.file_size_in_bytes for f in b) <= 100 for b in bins)
    assert pack([file(10)], 100) == [], "one file alone is not rewritten"


def meta(ages_days: list[float], refs: dict[str, int] | None = None) -> SimpleNamespace:
    """Snapshots 1..n, oldest first, ``ages_days`` old; the newest is current."""
    snaps = [SimpleNamespace(snapshot_id=i + 1, sequence_number=i + 1, timestamp_ms=NOW - int(a * DAY_MS))
             for i, a in enumerate(ages_days)]
    current = snaps[-1].snapshot_id
    refs = {"main": current, **(refs or {})}
    return SimpleNamespace(snapshots=snaps, current_snapshot_id=current,
                           refs={k: SimpleNamespace(snapshot_id=v) for k, v in refs.items()})


def test_a_snapshot_stays_only_while_both_rules_allow_it() -> None:
    m = meta([10, 9, 3, 2, 1])
    assert plan_expiry(m, 3, 7, NOW).expire == [1, 2], "newest 3 stay"
    assert plan_expiry(m, 100, 7, NOW).expire == [1, 2], "older than 7 days go"
    assert plan_expiry(m, 100, 2.5, NOW).expire == [1, 2, 3]
    assert plan_expiry(m, 1, 365, NOW).expire == [1, 2, 3, 4]
    assert plan_expiry(meta([30, 20]), 1, 1, NOW).expire == [1], "the current one always stays"
    assert plan_expiry(meta([30, 20, 10], {"audit": 1}), 1, 1, NOW).expire == [2], "a tag head stays"


def test_automatic_expiry_waits_for_a_margin() -> None:
    assert not due(meta([0] * 25), 20, 7, NOW), "20 + 5 snapshots: not yet"
    assert due(meta([0] * 26), 20, 7, NOW)
    assert due(meta([0] * 25), 20, 7, NOW, added=1), "the commit just made counts"
    assert not due(meta([0] * 220), 200, 7, NOW) and due(meta([0] * 221), 200, 7, NOW), "a tenth of 200"
    assert not due(meta([7.5, 0]), 20, 7, NOW), "a day of slack past keep_days"
    assert due(meta([8.5, 0]), 20, 7, NOW)


def test_one_spelling_per_path() -> None:
    assert canonical("file:///tmp/a%20b/x.parquet") == "/tmp/a b/x.parquet"
    assert canonical("s3a://bucket/k") == canonical("s3n://bucket/k") == "s3://bucket/k"
    assert canonical("/plain/path") == "/plain/path"
