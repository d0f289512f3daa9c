"""The auto upsert mode's threshold properties (``lakeroute.upsert.auto-*`` in
``target.properties``) are checked when the route is read: a value that is not a number >= 0
is a configuration error naming the file, the property and the fix."""

from __future__ import annotations

import pytest
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import parse_route


def doc(properties: dict[str, str]) -> dict:
    return {"name": "r", "source": {"bucket": "landing"}, "sql": "SELECT * FROM source",
            "target": {"table": "ns.t", "mode": "upsert", "key": ["id"], "properties": properties}}


@pytest.mark.parametrize("name", ["lakeroute.upsert.auto-rows-per-batch-row", "lakeroute.upsert.auto-min-bytes"])
@pytest.mark.parametrize("value", ["lots", "-1", ""])
def test_a_threshold_that_is_not_a_number_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_route(doc({name: value}), "routes/bad.yaml")
    [line] = str(err.value).splitlines()
    assert line.startswith("routes/bad.yaml: target: properties: ") and name in line and "a number >= 0" in line


def test_thresholds_that_are_numbers_are_kept() -> None:
    props = {"lakeroute.upsert.auto-rows-per-batch-row": "2.5", "lakeroute.upsert.auto-min-bytes": "0"}
    assert parse_route(doc(props), "routes/ok.yaml").target.properties == props
