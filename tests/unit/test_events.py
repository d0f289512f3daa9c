"""Event parsing: SQS batches of S3 notifications (and the other shapes) -> ObjectRefs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lakeroute.aws.events import parse_event
from lakeroute.core.pipeline import ObjectRef

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def sqs_event(*bodies: Any) -> dict[str, Any]:
    return {"Records": [
        {"messageId": f"m{i}", "body": b if isinstance(b, str) else json.dumps(b),
         "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": "1"}}
        for i, b in enumerate(bodies)]}


def s3_body(key: str, name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", "eventName": name,
                         "s3": {"bucket": {"name": "bkt"}, "object": {"key": key, **obj}}}]}


def test_sqs_batch_of_s3_notifications_decodes_keys_and_versions() -> None:
    parsed = parse_event(load("sqs_s3_object_created.json"))
    assert parsed.kind == "sqs" and parsed.is_sqs
    assert parsed.refs == [
        ObjectRef("acme-sales-landing", "orders/2024 01/it's here.parquet",
                  "d41d8cd98f00b204e9800998ecf8427e", "0a5b4c2e-8d31-4f4e-9c0a-3d1b2f7e6a01", 2048),
        ObjectRef("acme-iot-landing", "readings/a+b (copy).parquet",
                  "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G", "1b6c5d3f-9e42-4a5f-8d1b-4e2c3a8f7b02", 73400320),
    ]
    assert parsed.ignored == [("2c7d6e4a-af53-4b6a-9e2c-5f3d4b9a8c03",
                               "s3:TestEvent for bucket acme-sales-landing")]
    assert parsed.malformed == []


def test_mixed_batch_ignores_deletes_and_folders_unwraps_sns_and_eventbridge() -> None:
    parsed = parse_event(load("sqs_mixed.json"))
    assert [(r.id, r.bucket, r.key, r.version) for r in parsed.refs] == [
        ("60b1ac8e-e397-4fae-bc6a-9d7b8fdec007", "acme-sales-landing", "refunds/rück 1.csv.gz",
         "d41d8cd98f00b204e9800998ecf8427e"),
        ("71c2bd9f-f4a8-4abf-8d7b-ae8c9aefd108", "acme-web-events", "2026/11/02/events 10.json",
         "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"),
        # one message, two records: both objects carry the message id
        ("82d3cea0-05b9-4bc0-9e8c-bf9dabf0e209", "acme-web-events", "a.json",
         "11111111111111111111111111111111"),
        ("82d3cea0-05b9-4bc0-9e8c-bf9dabf0e209", "acme-web-events", "b.json",
         "22222222222222222222222222222222"),
    ]
    assert [i for i, _ in parsed.ignored] == ["3d8e7f5b-b064-4c7b-8f3d-6a4e5cab9d04",
                                              "5fa09b7d-d286-4e9d-ab5f-8c6a7ecdbf06"]
    assert "ObjectRemoved:Delete" in parsed.ignored[0][1]
    assert "folder placeholder" in parsed.ignored[1][1]
    assert [i for i, _ in parsed.malformed] == ["4e9f8a6c-c175-4d8c-9a4e-7b5f6dbcae05",
                                                "93e4dfb1-16ca-4cd1-af9d-c0aebc01f30a"]


def test_direct_s3_invocation() -> None:
    parsed = parse_event(load("s3_direct.json"))
    assert parsed.kind == "s3" and not parsed.is_sqs
    (ref,) = parsed.refs
    assert (ref.bucket, ref.key) == ("acme-sales-landing", "orders/2024-01-01/part 0001.parquet")
    assert ref.version == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"


def test_direct_eventbridge_invocation_uses_the_event_id() -> None:
    parsed = parse_event(load("eventbridge_object_created.json"))
    assert parsed.kind == "eventbridge"
    assert parsed.refs == [ObjectRef("acme-web-events", "2026/11/02/events 10.json",
                                     "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                                     "17793124-05d4-b198-2fde-7ededc63b103", 5120)]


def test_eventbridge_other_detail_types_are_ignored() -> None:
    event = load("eventbridge_object_created.json") | {"detail-type": "Object Deleted"}
    parsed = parse_event(event)
    assert parsed.refs == [] and len(parsed.ignored) == 1


def test_direct_sns_invocation() -> None:
    parsed = parse_event(load("sns_direct.json"))
    assert parsed.kind == "sns"
    assert [(r.bucket, r.key) for r in parsed.refs] == [("acme-sales-landing", "refunds/rück 1.csv.gz")]


@pytest.mark.parametrize(("encoded", "key"), [
    ("red+flower.jpg", "red flower.jpg"),
    ("a%2Bb.csv", "a+b.csv"),
    ("it%27s+%22quoted%22.json", "it's \"quoted\".json"),
    ("dir%2Fsub/x%3Dy%26z.parquet", "dir/sub/x=y&z.parquet"),  # moto and MinIO encode '/' too
    ("100%25.csv", "100%.csv"),
    ("%E6%97%A5%E6%9C%AC.csv", "日本.csv"),
    ("x%5B1%5D%3F.parquet", "x[1]?.parquet"),
])
def test_keys_are_url_decoded_form_style(encoded: str, key: str) -> None:
    (ref,) = parse_event(sqs_event(s3_body(encoded, eTag="abc"))).refs
    assert ref.key == key


def test_version_prefers_version_id_over_etag_and_ignores_null() -> None:
    refs = parse_event(sqs_event(
        s3_body("a.csv", eTag="e1", versionId="v1"),
        s3_body("b.csv", eTag="e2", versionId="null"),  # versioning suspended
        s3_body("c.csv"),
    )).refs
    assert [r.version for r in refs] == ["v1", "e2", None]


def test_every_object_created_flavour_counts() -> None:
    names = ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
             "ObjectCreated:CompleteMultipartUpload"]
    parsed = parse_event(sqs_event(*[s3_body(f"{i}.csv", name=n) for i, n in enumerate(names)]))
    assert len(parsed.refs) == 4 and not parsed.ignored


@pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "ObjectRestore:Completed",
                                  "s3:ReducedRedundancyLostObject", "LifecycleExpiration:Delete"])
def test_other_s3_events_are_ignored(name: str) -> None:
    parsed = parse_event(sqs_event(s3_body("a.csv", name=name)))
    assert parsed.refs == [] and [i for i, _ in parsed.ignored] == ["m0"] and not parsed.malformed


def test_test_event_alone_is_ignored() -> None:
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "bkt"}
    parsed = parse_event(sqs_event(body))
    assert parsed.refs == [] and parsed.ignored == [("m0", "s3:TestEvent for bucket bkt")]


@pytest.mark.parametrize("body", [
    "", "not json", "[1, 2]", "null", json.dumps({"Records": []}), json.dumps({"Records": "x"}),
    json.dumps({"Records": [{"eventSource": "aws:dynamodb"}]}),
    json.dumps(s3_body("")),  # no key
    json.dumps({"Type": "Notification", "Message": "not json"}),
])
def test_malformed_bodies_are_reported_not_raised(body: str) -> None:
    parsed = parse_event(sqs_event(body))
    assert parsed.refs == [] and [i for i, _ in parsed.malformed] == ["m0"]


def test_non_mapping_event() -> None:
    parsed = parse_event(["not", "an", "event"])
    assert parsed.kind == "unknown" and parsed.malformed


def test_deep_nesting_is_bounded() -> None:
    doc: Any = s3_body("a.csv")
    for _ in range(6):
        doc = {"Type": "Notification", "Message": json.dumps(doc)}
    parsed = parse_event(sqs_event(doc))
    assert parsed.refs == [] and parsed.malformed


def test_hostile_bodies_are_malformed_items_never_exceptions() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    deep_sns = json.dumps({"Type": "Notification", "Message": deep})
    bodies = [deep, deep_sns, "x" * (2 * 1024 * 1024), "\x00\xff not json", json.dumps([1, 2]), "null",
              json.dumps(s3_body("good.csv"))]
    event = sqs_event(*bodies)
    for i, record in enumerate(event["Records"]):
        if isinstance(bodies[i], str):
            record["body"] = bodies[i]
    parsed = parse_event(event)
    why = dict(parsed.malformed)
    print({k: v[:50] for k, v in why.items()})
    assert [r.key for r in parsed.refs] == ["good.csv"]
    assert len(parsed.malformed) == len(bodies) - 1
    assert "nested too deeply" in why[event["Records"][0]["messageId"]]
    assert parse_event({"Records": [{"eventSource": "aws:sqs", "body": deep}]}).malformed
