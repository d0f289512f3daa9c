"""The route files' JSON Schema: generated from the route model, committed, referenced by
every sample route, and in agreement with the model on the samples and on typical mistakes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from lakeroute.cli import app
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import parse_route
from lakeroute.core.routes.schema import SCHEMA_PATH, render_route_schema
from lakeroute.demo import write_sample_routes
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / SCHEMA_PATH
COMMENT = re.compile(r"^# yaml-language-server: \$schema=(?P<target>\S+)$", re.MULTILINE)
SAMPLE_DIRS = (ROOT / "routes", ROOT / "lambda_src" / "lakeroute" / "samples" / "routes")


def sample_files() -> list[Path]:
    files = sorted(p for d in SAMPLE_DIRS for p in d.glob("*.y*ml"))
    assert len(files) >= 10, f"expected the sample routes in {SAMPLE_DIRS}, found {files}"
    return files


def doc_routes() -> list[tuple[str, str]]:
    """YAML blocks in the README and docs/ that are whole routes (a top-level name and source)."""
    found = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", md.read_text(), re.S | re.M)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "name" in data and "source" in data:
                found.append((f"{md.relative_to(ROOT)}#{i}", block))
    return found


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_committed_schema_is_the_models() -> None:
    assert SCHEMA_FILE.read_text() == render_route_schema(), f"{SCHEMA_PATH} is stale: run make docs"


def test_lakeroute_schema_prints_it_and_writes_it(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(render_route_schema())
    out = tmp_path / "sub" / "route.schema.json"
    written = runner.invoke(app, ["schema", "--output", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text() == render_route_schema()


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sample_route_refers_to_the_schema_and_is_accepted(path: Path) -> None:
    text = path.read_text()
    m = COMMENT.search(text)
    assert m and text.startswith(m.group(0)), f"{path}: first line must be the yaml-language-server comment"
    # The samples are written for a project's routes/ folder beside schemas/ (the demo copies
    # the packaged ones there); from routes/ the reference must resolve to the committed file.
    assert (ROOT / "routes" / m.group("target")).resolve() == SCHEMA_FILE
    data = yaml.safe_load(text)
    parse_route(data, str(path))
    validator().validate(data)


def test_route_blocks_in_the_docs_refer_to_the_schema_and_are_accepted() -> None:
    blocks = doc_routes()
    assert blocks, "the route reference shows at least one whole route"
    for where, block in blocks:
        data = yaml.safe_load(block)
        parse_route(data, where)
        errors = [e.message for e in validator().iter_errors(data)]
        assert not errors, f"{where}: {errors}"
    bare = [where for where, block in blocks if not COMMENT.search(block)]
    assert not bare, f"whole routes without the yaml-language-server comment: {bare}"


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(yaml.safe_load((ROOT / "routes" / "sales-orders.yaml").read_text()))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return data


DROP = object()
MISTAKES = {
    "typo'd top-level field": ("tagret", {"table": "sales.orders"}),
    "typo'd source field": ("source.prefx", "orders/"),
    "typo'd target field": ("target.partiton_by", ["day(order_ts)"]),
    "mode not in the enum": ("target.mode", "upsertt"),
    "format not in the enum": ("source.format", "xlsx"),
    "exclude as a string, not a list": ("source.exclude", "*.tmp"),
    "bucket breaking its pattern": ("source.bucket", "Acme_Sales"),
    "table without a namespace": ("target.table", "orders"),
    "maintenance number as words": ("target.maintenance", {"keep_snapshots": "many"}),
    "commit trigger out of bounds": ("target.commit", {"max_files": 0}),
    "both target and targets": ("targets", [{"table": "sales.copy", "sql": "SELECT 1 AS x FROM source"}]),
    "neither target nor targets": ("target", DROP),
    "target null": ("target", None),
}


@pytest.mark.parametrize("field,value", MISTAKES.values(), ids=list(MISTAKES))
def test_the_schema_rejects_what_the_model_rejects(field: str, value: Any) -> None:
    data = with_change(field, value)
    with pytest.raises(ConfigError):
        parse_route(data, "mistake.yaml")
    assert list(validator().iter_errors(data)), f"the schema accepted {field}={value!r}"


def test_the_unchanged_route_is_accepted_by_both() -> None:
    """The baseline the mistakes start from: the failures above are the change's alone."""
    data = with_change("description", "unchanged otherwise")
    parse_route(data, "ok.yaml")
    validator().validate(data)


def test_the_demo_writes_the_schema_its_sample_routes_name(tmp_path: Path) -> None:
    routes = tmp_path / "project" / "routes"
    written = write_sample_routes(routes)
    copies = sorted(routes.glob("*.yaml"))
    assert [p.name for p in copies] == sorted(p.name for p in (ROOT / "routes").glob("*.yaml"))
    for copy_ in copies:
        m = COMMENT.search(copy_.read_text())
        assert m, f"{copy_.name}: no yaml-language-server comment"
        assert (routes / m.group("target")).read_text() == render_route_schema()
    assert tmp_path / "project" / "schemas" / "route.schema.json" in written
    # A schema already there is the project's: left alone, not written over.
    (tmp_path / "project" / "schemas" / "route.schema.json").write_text("{}\n")
    assert tmp_path / "project" / "schemas" / "route.schema.json" not in write_sample_routes(routes)
    assert (tmp_path / "project" / "schemas" / "route.schema.json").read_text() == "{}\n"
