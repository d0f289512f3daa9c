"""Logical -> physical names of a stage (stacks/naming.py) and their settings (no synth)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from lakeroute.core.routes import parse_route

from stacks.config import StageConfig, StageConfigError
from stacks.naming import (
    REGION_BUDGET,
    bucket_stem,
    database_name,
    generated_bucket_name,
    output_id,
    stage_names,
    stage_tag,
)
from stacks.route_plan import RoutePlanError, landing_buckets, namespaces

from .synth import REPO_ROOT

ACCOUNT = "111122223333"
# S3 general purpose bucket names: 3-63 characters, lowercase letters, digits, '.', '-',
# a letter or digit at both ends, no '..'.
S3_NAME = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1", "eusc-de-east-1", "x" * REGION_BUDGET)


def stage(name: str = "dev", **change: Any) -> StageConfig:
    raw = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["lakeroute:stages"]["dev"]
    return StageConfig.from_mapping(name, {**raw, **change})


def route(name: str, bucket: str, table: str = "ns.t", **source: Any) -> Any:
    return parse_route({"name": name, "source": {"bucket": bucket, **source},
                        "target": {"table": table}}, name)


def names(config: StageConfig, *routes: Any) -> Any:
    return stage_names(config, landing_buckets(routes), namespaces(routes),
                       account=ACCOUNT, region="eu-west-1")


# ---------------------------------------------------------------- the rule


def test_default_name_is_logical_stage_account_region() -> None:
    assert generated_bucket_name("acme-sales-landing", "prod", ACCOUNT, "eu-west-1") == (
        "acme-sales-landing-prod-111122223333-eu-west-1")
    assert stage_tag(stage("prod")) == "prod"
    assert stage_tag(stage("prod", generation=3)) == "prod-g3"


@pytest.mark.parametrize("tag", ["dev", "prod", "abcdefghijkl", "abcdefghijkl-g99"])
@pytest.mark.parametrize("logical", ["abc", "acme-sales-landing", "a" * 40, "b" * 63,
                                     "acme.data-" + "x" * 53, "long-name-with-dash" + "-" * 20 + "z" * 24])
def test_generated_names_are_valid_s3_names_in_every_region(logical: str, tag: str) -> None:
    for region in REGIONS:
        name = generated_bucket_name(logical, tag, ACCOUNT, region)
        assert len(name) <= 63, (name, len(name))
        assert S3_NAME.match(name), name
        assert name.endswith(f"-{tag}-{ACCOUNT}-{region}")


def test_long_logical_names_are_cut_with_a_hash_and_stay_distinct() -> None:
    fits = 63 - len("-dev-") - 12 - 1 - REGION_BUDGET
    assert bucket_stem("a" * fits, "dev") == "a" * fits          # at the budget: kept
    cut = bucket_stem("a" * (fits + 1), "dev")
    assert len(cut) == fits and re.fullmatch(r"a+-[0-9a-f]{8}", cut)
    # Two names that differ only after the cut get different stems.
    one, two = "acme-" + "x" * 40 + "-one", "acme-" + "x" * 40 + "-two"
    assert bucket_stem(one, "dev") != bucket_stem(two, "dev")
    assert bucket_stem(one, "dev")[:10] == one[:10]
    # No '-' or '.' right before the hash separator.
    assert not re.search(r"[.-]-[0-9a-f]{8}$", bucket_stem("abc" + "-" * 30 + "d" * 10, "dev"))


def test_database_names() -> None:
    assert database_name("sales", stage("dev")) == "sales_dev"
    assert database_name("Sales", stage("prod")) == "sales_prod"  # Glue stores lowercase
    assert database_name("sales", stage("prod", databases="account")) == "sales"
    assert database_name("sales", stage("prod", generation=2)) == "sales_prod_g2"
    assert database_name("sales", stage("prod", databases="account", generation=2)) == "sales_g2"


def test_output_ids_are_alphanumeric() -> None:
    assert output_id("LandingBucket", "acme-sales.landing") == "LandingBucketAcmeSalesLanding"
    assert output_id("GlueDatabase", "web_events") == "GlueDatabaseWebEvents"


# ---------------------------------------------------------------- a stage's names


def test_stage_names_default_override_and_imports() -> None:
    config = stage("prod", buckets={"b-named": {"name": "exact-name"},
                                    "b-retained": {"existing": True},
                                    "b-retained-named": {"name": "old-bucket", "existing": True}})
    result = names(config, route("a", "b-default", "x.t"), route("b", "b-named", "y.t"),
                   route("c", "b-retained"), route("d", "b-retained-named"),
                   route("e", "b-partner", existing=True))
    got = {b.logical: (b.physical, b.imported) for b in result.buckets}
    assert got == {
        "b-default": ("b-default-prod-111122223333-eu-west-1", False),
        "b-named": ("exact-name", False),
        "b-retained": ("b-retained-prod-111122223333-eu-west-1", True),
        "b-retained-named": ("old-bucket", True),
        "b-partner": ("b-partner", True),  # source.existing: the name as given, every stage
    }
    assert result.databases == {"ns": "ns_prod", "x": "x_prod", "y": "y_prod"}


def test_created_buckets_are_notified_of_every_key_imported_ones_of_their_route_prefixes() -> None:
    """Issue 22 (6): a misplaced file in a bucket the stack creates reaches the function (and is
    quarantined "no route"); an imported bucket, by its routes or by the stage, keeps prefixes."""
    config = stage("prod", buckets={"b-retained": {"existing": True}})
    result = names(config, route("a", "b-created", prefix="orders/"),
                   route("b", "b-created", "ns.u", prefix="refunds/"), route("c", "b-retained", prefix="feed/"),
                   route("d", "b-partner", prefix="in/", existing=True))
    got = {b.logical: (b.imported, b.notified_prefixes) for b in result.buckets}
    assert got == {"b-created": (False, ("",)), "b-retained": (True, ("feed/",)), "b-partner": (True, ("in/",))}


def test_a_mapping_no_route_uses_is_an_error() -> None:
    with pytest.raises(RoutePlanError, match=r"buckets: no route uses the bucket\(s\) typo-bucket"):
        names(stage(buckets={"typo-bucket": {"name": "x-y-z"}}), route("a", "b-one"))


def test_a_mapping_of_an_existing_route_bucket_is_an_error() -> None:
    with pytest.raises(RoutePlanError, match="b-one: its routes say source.existing: true"):
        names(stage(buckets={"b-one": {"name": "x-y-z"}}), route("a", "b-one", existing=True))


def test_two_logical_buckets_on_one_physical_name_is_an_error() -> None:
    with pytest.raises(RoutePlanError, match="'b-one' and 'b-two' both map to 'same-name'"):
        names(stage(buckets={"b-one": {"name": "same-name"}, "b-two": {"name": "same-name"}}),
              route("a", "b-one"), route("b", "b-two"))
    with pytest.raises(RoutePlanError, match="both map to 'b-partner'"):
        names(stage(buckets={"b-one": {"name": "b-partner"}}),
              route("a", "b-one"), route("b", "b-partner", existing=True))


def test_two_namespaces_on_one_database_is_an_error() -> None:
    with pytest.raises(RoutePlanError, match="'Sales' and 'sales' both map to 'sales_dev'"):
        names(stage(), route("a", "b-one", "Sales.t"), route("b", "b-one", "sales.u"))


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(("change", "message"), [
    ({"buckets": []}, "buckets: expected a mapping"),
    ({"buckets": {"b": "name"}}, r"buckets.b: expected a mapping"),
    ({"buckets": {"b": {"nmae": "x-y-z"}}}, r"buckets.b: unknown key\(s\) nmae"),
    ({"buckets": {"b": {"name": "Bad_Name"}}}, r"buckets.b.name: not an S3 bucket name"),
    ({"buckets": {"b": {"name": "a" * 64}}}, r"buckets.b.name: not an S3 bucket name"),
    ({"buckets": {"b": {"existing": "yes"}}}, r"buckets.b.existing: expected true or false"),
    ({"databases": "global"}, "databases: use 'stage'"),
    ({"generation": 0}, "generation"),
    ({"generation": "2"}, "generation: expected int"),
    ({"oldest_message_alarm_seconds": 10}, "oldest_message_alarm_seconds"),
    ({"oldest_message_alarm_seconds": 5 * 86400}, "oldest_message_alarm_seconds"),
    ({"alarm_email": "not-an-address"}, "alarm_email"),
])
def test_bad_naming_and_alarm_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StageConfigError, match=message):
        stage(**change)


@pytest.mark.parametrize("bad", ["Prod", "prod-eu", "1dev", "a" * 13, ""])
def test_stage_names_fit_into_physical_names(bad: str) -> None:
    with pytest.raises(StageConfigError, match="stage name is 1-12 lowercase letters or digits"):
        stage(bad)


def test_alarm_email_may_be_an_address_or_absent() -> None:
    assert stage(alarm_email="oncall@example.com").alarm_email == "oncall@example.com"
    raw = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["lakeroute:stages"]["dev"]
    del raw["alarm_email"]  # CDK drops null context values
    assert StageConfig.from_mapping("dev", raw).alarm_email is None
