"""Day one, routing: `validate` says why a route has no sample when its folder holds files
(a prefix, pattern or exclude that misses them by case or extension, metadata the files do
not carry), and `ingest` of a key no route takes names the closest route and the reason.
Real route files, real landing files, the real CLI."""

from __future__ import annotations

from tests.integration.test_cli import run
from tests.support.workspace import Workspace, orders


def lines(err: str, prefix: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(prefix)]


def test_validate_names_the_near_miss_instead_of_no_sample(ws: Workspace) -> None:
    ws.route("crm", {"bucket": "bkt", "prefix": "crm/", "pattern": "*.CSV"}, {"table": "ns.crm"})
    ws.put("bkt", "crm/contacts.csv", b"id\n1\n")
    ws.route("gz", {"bucket": "bkt", "prefix": "gz/", "pattern": "*.csv", "exclude": ["*.TMP"]}, {"table": "ns.gz"})
    ws.put("bkt", "gz/a.csv.gz", b"x")
    ws.put("bkt", "gz/b.tmp", b"x")
    ws.route("clicks", {"bucket": "bkt", "prefix": "Clicks/"}, {"table": "ns.clicks"})
    ws.put("bkt", "clicks/a.parquet", orders(1))
    ws.route("meta", {"bucket": "bkt", "prefix": "m/", "metadata": {"dataset": "orders"}}, {"table": "ns.m"})
    ws.put("bkt", "m/a.parquet", orders(1), {"dataset": "refunds"})
    ws.route("empty", {"bucket": "other", "prefix": "none/"}, {"table": "ns.e"})
    code, out, err = run(ws, "validate")
    print(out + err)
    assert code == 0, "near misses are warnings: the route files are valid"
    warned = lines(err, "warning: ")
    assert any("crm.yaml: source.pattern: pattern '*.CSV' matches none of the 1 file(s) under" in w
               and "'contacts.csv' would match ignoring case (globs are case-sensitive): write '*.csv'" in w
               for w in warned), warned
    assert any("gz.yaml: source.pattern:" in w and "'a.csv.gz' has a further extension '.gz': write '*.csv.gz'" in w
               for w in warned), warned
    assert any("gz.yaml: source.exclude: '*.TMP' matches none" in w and "write '*.tmp'" in w for w in warned), warned
    assert any("clicks.yaml: source.prefix:" in w and "write prefix 'clicks/'" in w for w in warned), warned
    noted = lines(err, "note: ")
    assert any("meta.yaml: source.metadata:" in n and "'m/a.parquet' does not carry its metadata: it requires "
               "metadata dataset='orders' (the object has dataset='refunds')" in n for n in noted), noted
    assert any("crm.yaml: sql: not bound: no sample (source.pattern: see above)" in n for n in noted), noted
    assert any("empty.yaml: sql: not bound: no sample under" in n for n in noted), "no file at all: as before"
    assert not any("no sample under" in n for n in noted if "crm.yaml" in n), "the folder holds a file"

    # the fix named is the fix: the warning goes and the route binds against its sample
    ws.route("crm", {"bucket": "bkt", "prefix": "crm/", "pattern": "*.csv"}, {"table": "ns.crm"})
    code, _, err = run(ws, "validate")
    assert code == 0 and not any("crm.yaml" in ln for ln in err.splitlines()), err


def test_ingest_of_an_unmatched_key_names_the_closest_route_and_why(ws: Workspace) -> None:
    ws.route("crm", {"bucket": "bkt", "prefix": "crm/", "pattern": "*.CSV"}, {"table": "ns.crm"})
    ws.route("orders", {"bucket": "bkt", "prefix": "orders/", "metadata": {"dataset": "orders"}},
             {"table": "ns.orders"})
    ws.put("bkt", "crm/contacts.csv", b"id\n1\n")
    ws.put("bkt", "orders/1.parquet", orders(1), {"dataset": "refunds"})
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    print(out + err)
    assert code == 1
    [crm] = [ln for ln in err.splitlines() if "crm/contacts.csv" in ln]
    assert ("no route for bkt/crm/contacts.csv; closest: route crm: pattern '*.CSV' does not match "
            "'contacts.csv'; 'contacts.csv' would match ignoring case (globs are case-sensitive): write '*.csv'") in crm
    [meta] = [ln for ln in err.splitlines() if "orders/1.parquet" in ln]
    assert "closest: route orders: it requires metadata dataset='orders' (the object has dataset='refunds')" in meta
