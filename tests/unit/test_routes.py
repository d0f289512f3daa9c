"""Route model, validation messages, matching and the static ambiguity checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lakeroute.core.errors import ConfigError, NoRouteError, ObjectError
from lakeroute.core.routes import (
    Route,
    RouteTable,
    collect_routes,
    could_tie,
    format_from_key,
    globs_intersect,
    load_routes,
    parse_route,
)


def route(name: str = "r", bucket: str = "landing", **source: object) -> Route:
    target = source.pop("target", {"table": "ns.t"})
    return parse_route({"name": name, "source": {"bucket": bucket, **source}, "target": target,
                        "sql": "SELECT * FROM source"}, f"{name}.yaml")


# ---------------------------------------------------------------- model and messages


def test_defaults() -> None:
    r = route()
    assert r.source.prefix == "" and r.source.format == "auto" and r.target.mode == "append"
    assert r.sql == "SELECT * FROM source"


BASE = {"name": "ok", "source": {"bucket": "landing"}, "target": {"table": "ns.t"}}


def with_(path: str, value: object) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


INVALID = [
    (with_("name", "Bad_Name"), "name: 'Bad_Name' does not match"),
    (with_("source.bucket", "UPPER"), "source.bucket: 'UPPER' does not match"),
    (with_("source.prefix", "orders"), "source.prefix: a folder prefix ends with '/': write 'orders/'"),
    (with_("source.prefix", "/orders/"), "source.prefix: must not start with '/'"),
    (with_("source.buckett", "x"), "source.buckett: unknown field"),
    (with_("source.format", "xml"), "source.format: Input should be 'auto', 'parquet', 'csv' or 'json'"),
    (with_("source.options", {"bad name": 1}), "source.options: reader option name 'bad name'"),
    (with_("target.table", "no_namespace"), "target.table: 'no_namespace' does not match"),
    (with_("target.mode", "merge"), "target.mode: Input should be 'append', 'upsert', 'replace' or 'overwrite'"),
    (with_("target.mode", "upsert"), "target: mode 'upsert' needs key: [columns]"),
    (with_("target", {"table": "ns.t", "key": ["id"]}), "target: key applies to mode 'upsert' only"),
    (with_("target", {"table": "ns.t", "mode": "overwrite"}), "target: mode 'overwrite' needs overwrite: partitions"),
    (with_("target", {"table": "ns.t", "mode": "replace", "overwrite": "table"}),
     "target: overwrite: table applies to mode 'overwrite' only"),
    (with_("target", {"table": "ns.t", "mode": "upsert", "key": ["id"], "order_by": "id"}),
     "target: order_by 'id' is a key column"),
    (with_("target", {"table": "ns.t", "mode": "upsert", "key": ["id"], "columns": {"v": "long"}}),
     "target: 'id' (key/order_by) is not in target.columns"),
    (with_("target", {"table": "ns.t", "mode": "upsert", "key": ["id"], "operation": {"column": "op", "delete": []}}),
     "target.operation.delete: List should have at least 1 item"),
    (with_("target", {"table": "ns.t", "mode": "upsert", "key": ["id"],
                      "operation": {"column": "op", "delete": ["D"], "tombstone_days": 7}}),
     "target: operation.tombstone_days needs order_by: without an order the later commit wins"),
    (with_("target", {"table": "ns.t", "mode": "upsert", "key": ["id"], "order_by": "ts",
                      "operation": {"column": "op", "delete": ["D"], "tombstone_days": -1}}),
     "target.operation.tombstone_days: Input should be greater than or equal to 0"),
    (with_("target.columns", {"a": "varchar2"}), "target.columns: unknown column type 'varchar2'"),
    (with_("target.partition_by", ["week(ts)"]), "target.partition_by: bad partition transform 'week(ts)'"),
    (with_("target", {"table": "ns.t", "columns": {"a": "long"}, "partition_by": ["day(ts)"]}),
     "target: partition column 'ts' is not in target.columns"),
    (with_("sql", "   "), "sql: must not be empty"),
    ({"source": {"bucket": "landing"}, "target": {"table": "ns.t"}}, "name: Field required"),
    ({"name": "x", "target": {"table": "ns.t"}}, "source: Field required"),
]


@pytest.mark.parametrize(("doc", "expected"), INVALID, ids=[e for _, e in INVALID])
def test_invalid_routes_name_file_and_field(doc: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_route(doc, "routes/bad.yaml")
    lines = str(err.value).splitlines()
    assert any(line.startswith("routes/bad.yaml: ") and expected in line for line in lines), lines


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: [unclosed\n")
    (tmp_path / "b.yaml").write_text("- just a list\n")
    routes, _, problems = collect_routes(tmp_path)
    assert routes == []
    assert any("a.yaml: line" in p and "invalid YAML" in p for p in problems), problems
    assert any("b.yaml: expected a mapping" in p for p in problems), problems


def test_duplicate_names_and_missing_dir(tmp_path: Path) -> None:
    for f in ("a.yaml", "b.yaml"):
        (tmp_path / f).write_text(yaml.safe_dump({**BASE, "source": {"bucket": "landing", "prefix": f"{f}/"}}))
    with pytest.raises(ConfigError, match="name: 'ok' is already used by"):
        load_routes(tmp_path)
    with pytest.raises(ConfigError, match="routes directory not found"):
        load_routes(tmp_path / "nope")


def test_item_round_trip() -> None:
    r = route(prefix="a/", metadata={"k": "v"})
    assert Route.from_item(r.to_item()) == r


@pytest.mark.parametrize(("key", "fmt"), [
    ("a/b.parquet", "parquet"), ("x.CSV", "csv"), ("x.csv.gz", "csv"), ("x.tsv", "csv"),
    ("y.json", "json"), ("y.jsonl.zst", "json"), ("z.ndjson.gz", "json"),
])
def test_format_from_key(key: str, fmt: str) -> None:
    assert format_from_key(key) == fmt


def test_format_unknown_extension() -> None:
    with pytest.raises(ObjectError, match="set source.format"):
        format_from_key("data.bin")


# ---------------------------------------------------------------- matching


def test_bucket_and_folder_routing_longest_prefix_wins() -> None:
    table = RouteTable.of([route("whole"), route("orders", prefix="orders/"),
                           route("eu", prefix="orders/eu/"), route("other", bucket="other-bucket")])
    assert table.match("landing", "x.csv").name == "whole"
    assert table.match("landing", "orders/1.parquet").name == "orders"
    assert table.match("landing", "orders/eu/1.parquet").name == "eu"
    assert table.match("other-bucket", "orders/eu/1.parquet").name == "other"
    with pytest.raises(NoRouteError, match="no route for nobody/x.csv"):
        table.match("nobody", "x.csv")


def test_pattern_applies_to_rest_of_key() -> None:
    table = RouteTable.of([route("pq", prefix="in/", pattern="*.parquet"),
                           route("csv", prefix="in/", pattern="*.csv")])
    assert table.match("landing", "in/deep/a.parquet").name == "pq"
    assert table.match("landing", "in/a.csv").name == "csv"
    with pytest.raises(NoRouteError):
        table.match("landing", "in/a.json")


def test_pattern_beats_no_pattern_at_same_prefix() -> None:
    table = RouteTable.of([route("any", prefix="in/"), route("pq", prefix="in/", pattern="*.parquet")])
    assert table.match("landing", "in/a.parquet").name == "pq"
    assert table.match("landing", "in/a.csv").name == "any"


def test_metadata_routing_and_lazy_metadata() -> None:
    table = RouteTable.of([route("t", prefix="r/", metadata={"kind": "temp"}),
                           route("h", prefix="r/", metadata={"kind": "hum"}),
                           route("plain", prefix="p/")])
    calls: list[int] = []

    def meta(value: str):  # noqa: ANN202
        def provider() -> dict[str, str]:
            calls.append(1)
            return {"kind": value}
        return provider

    assert table.match("landing", "r/1.parquet", meta("temp")).name == "t"
    assert table.match("landing", "r/1.parquet", meta("hum")).name == "h"
    with pytest.raises(NoRouteError):
        table.match("landing", "r/1.parquet", meta("other"))
    assert len(calls) == 3
    assert table.match("landing", "p/1.parquet", meta("temp")).name == "plain"
    assert len(calls) == 3, "metadata must not be fetched when no candidate route needs it"


def test_metadata_beats_plain_at_same_prefix() -> None:
    table = RouteTable.of([route("plain", prefix="r/"), route("meta", prefix="r/", metadata={"a": "1"})])
    assert table.match("landing", "r/x", lambda: {"a": "1"}).name == "meta"
    assert table.match("landing", "r/x", lambda: {"a": "2"}).name == "plain"


def test_runtime_tie_is_an_error_not_a_guess() -> None:
    table = RouteTable.of([route("a", prefix="x/"), route("b", prefix="x/")])
    with pytest.raises(ObjectError, match="ambiguous routes for landing/x/1: a, b"):
        table.match("landing", "x/1")


# ---------------------------------------------------------------- static checks


@pytest.mark.parametrize(("p", "q", "overlap"), [
    ("*.csv", "*.parquet", False),
    ("*.csv", "a*", True),
    ("a?c", "abc", True),
    ("a?c", "abd", False),
    ("[ab]x", "bx", True),
    ("[ab]x", "cx", False),
    ("*", "anything", True),
    ("x*y*z", "xz", False),
    ("x*y*z", "x1y2z", True),
])
def test_globs_intersect(p: str, q: str, overlap: bool) -> None:
    assert globs_intersect(p, q) is overlap
    assert globs_intersect(q, p) is overlap


def test_could_tie_rules() -> None:
    assert could_tie(route("a", prefix="x/"), route("b", prefix="x/"))
    assert not could_tie(route("a", prefix="x/"), route("b", prefix="x/y/"))
    assert not could_tie(route("a", prefix="x/"), route("b", bucket="other", prefix="x/"))
    assert not could_tie(route("a", prefix="x/", pattern="*.csv"), route("b", prefix="x/", pattern="*.json"))
    assert could_tie(route("a", prefix="x/", pattern="*.csv"), route("b", prefix="x/", pattern="2026*"))
    assert not could_tie(route("a", prefix="x/", metadata={"k": "1"}), route("b", prefix="x/", metadata={"k": "2"}))
    assert could_tie(route("a", prefix="x/", metadata={"k": "1"}), route("b", prefix="x/", metadata={"j": "2"}))


def test_load_routes_reports_ambiguity_and_table_disagreement(tmp_path: Path) -> None:
    docs = {
        "a.yaml": {"name": "a", "source": {"bucket": "landing", "prefix": "x/"}, "target": {"table": "ns.t"}},
        "b.yaml": {"name": "b", "source": {"bucket": "landing", "prefix": "x/"}, "target": {"table": "ns.t"}},
        "c.yaml": {"name": "c", "source": {"bucket": "landing", "prefix": "y/"},
                   "target": {"table": "ns.t", "partition_by": ["id"]}},
    }
    for name, doc in docs.items():
        (tmp_path / name).write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_routes(tmp_path)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert "b.yaml: source: ambiguous with route 'a'" in lines[0]
    assert "c.yaml: target: settings for table 'ns.t' disagree with route 'a'" in lines[1]
    assert "partition_by" in lines[1]


def test_sample_routes_match_the_repo_routes() -> None:
    """The package ships the sample routes; the repo's routes/ folder is the same set."""
    from lakeroute.demo import sample_route_files

    repo = Path(__file__).resolve().parents[2] / "routes"
    shipped = {f.name: f.read_text() for f in sample_route_files()}
    assert shipped == {f.name: f.read_text() for f in sorted(repo.glob("*.yaml"))}
    assert len(load_routes(repo)) == len(shipped) == 5


def test_cdc_deletes_are_remembered_14_days_by_default() -> None:
    target = {"table": "ns.t", "mode": "upsert", "key": ["id"], "order_by": "ts",
              "operation": {"column": "op", "delete": ["D"]}}
    op = route(target=target).target.operation
    assert op is not None and op.tombstone_days == 14
