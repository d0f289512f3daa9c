"""Why an object does not take a route (``core.routes.nearest``): the near misses by case
and by extension, and the closest route an unmatched key names."""

from __future__ import annotations

import pytest
from lakeroute.core.errors import NoRouteError
from lakeroute.core.routes import RouteTable
from lakeroute.core.routes.nearest import glob_near_miss, near_miss

from tests.unit.test_routes import route


@pytest.mark.parametrize(("glob", "name", "said"), [
    ("*.CSV", "a.csv", "'a.csv' would match ignoring case (globs are case-sensitive): write '*.csv'"),
    ("*.csv", "a.csv.gz", "'a.csv.gz' has a further extension '.gz': write '*.csv.gz' (or '*.csv*')"),
    ("*.csv", "a.tsv", "'a.tsv' has the extension '.tsv', not '.csv': write '*.tsv'"),
    ("*.csv", "a.parquet", None),
    ("day=*/*.json", "Day=1/x.json", "ignoring case"),
])
def test_near_misses_by_case_then_extension(glob: str, name: str, said: str | None) -> None:
    got = near_miss(glob, [name])
    assert (got is None) if said is None else (got is not None and said in got), got


def test_case_is_preferred_and_extension_can_be_left_out() -> None:
    assert "ignoring case" in (near_miss("*.TMP", ["a.csv.gz", "b.tmp"]) or "")
    assert near_miss("*.TMP", ["a.csv.gz"], extension=False) is None
    assert glob_near_miss("*.csv", "a.csv.gz", "case") is None


def test_an_unmatched_key_names_the_closest_route_and_why() -> None:
    table = RouteTable.of([
        route("crm", prefix="crm/", pattern="*.CSV"),
        route("clicks", prefix="Clicks/"),
        route("orders", prefix="orders/", metadata={"dataset": "orders"}),
        route("eu", prefix="sales/eu/"),
        route("other", bucket="partner-drop"),
    ])

    def said(bucket: str, key: str, meta: dict[str, str] | None = None) -> str:
        with pytest.raises(NoRouteError) as e:
            table.match(bucket, key, (lambda: meta or {}))
        print(e.value.message)
        return e.value.message

    assert said("landing", "crm/a.csv") == ("no route for landing/crm/a.csv; closest: route crm: pattern "
                                            "'*.CSV' does not match 'a.csv'; 'a.csv' would match ignoring "
                                            "case (globs are case-sensitive): write '*.csv'")
    assert "closest: route clicks: prefix 'Clicks/': 'clicks/1.parquet' is under 'clicks/'" in said(
        "landing", "clicks/1.parquet")
    assert said("landing", "orders/1.parquet", {"dataset": "refunds"}).endswith(
        "closest: route orders: it requires metadata dataset='orders' (the object has dataset='refunds')")
    assert said("landing", "orders/1.parquet", {}).endswith("(the object has no dataset)")
    assert said("landing", "sales/us/1.csv").endswith("closest: route eu: the key is not under its prefix 'sales/eu/'")
    assert "no route of bucket landing covers its folder (routes read: Clicks/ (clicks), crm/ (crm)" in said(
        "landing", "zzz/1.csv")
    assert said("partner-dorp", "x.csv").endswith(
        "no route reads bucket 'partner-dorp'; did you mean 'partner-drop'? (routes read: landing, partner-drop)")
