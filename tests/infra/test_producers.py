"""Producer policies (stacks/producers.py): one managed policy per landing bucket that lets a
producer upload into the prefixes its routes read, its ARN a stack output per logical bucket."""

from __future__ import annotations

from typing import Any

from .synth import Synth, physical, rendered

UPLOAD = ["s3:AbortMultipartUpload", "s3:PutObject"]  # sorted: the order CDK writes depends on flags


def producer_policies(s: Synth) -> dict[str, dict[str, Any]]:
    """Logical bucket -> its producer policy resource, found through the stack output."""
    by_id = s.resources("AWS::IAM::ManagedPolicy")
    found = {}
    for logical in s.stack.names.bucket_map():
        out = s.json["Outputs"][_output(logical)]
        found[logical] = by_id[out["Value"]["Ref"]]
    return found


def _output(logical: str) -> str:
    from stacks.producers import producer_output_id

    return producer_output_id(logical)


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rendered(policy["Properties"]["PolicyDocument"]["Statement"]))


def test_one_upload_policy_per_landing_bucket_on_its_routed_prefixes(dev: Synth) -> None:
    policies = producer_policies(dev)
    # lr-test-partner-drop is imported (existing: true): producers get a policy for it too.
    assert set(policies) == {"lr-test-sales", "lr-test-events", "lr-test-partner-drop"}
    assert len(dev.resources("AWS::IAM::ManagedPolicy")) == 3
    expected = {
        "lr-test-sales": ["orders/*", "refunds/*"],
        "lr-test-events": ["*"],  # its route has no prefix: the whole bucket is routed
        "lr-test-partner-drop": ["feed/*"],
    }
    for logical, policy in policies.items():
        (st,) = statements(policy)
        bucket = physical(dev, logical)
        assert st["Effect"] == "Allow" and sorted(st["Action"]) == UPLOAD, st
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert sorted(resources) == sorted(f"arn:aws:s3:::{bucket}/{p}" for p in expected[logical])
        assert "Condition" not in st
        # A policy to attach, not attached: nothing in the stack gets upload rights from it.
        props = policy["Properties"]
        assert not any(k in props for k in ("Roles", "Users", "Groups")), props
        # Fixed per bucket: CloudFormation replaces a managed policy whose description changes
        # (a new ARN), so it must not list the routes, which come and go.
        assert props["Description"] == f"lakeroute dev: upload files to landing bucket {logical}"


def test_landing_bucket_policy_arns_are_exported_outputs(dev: Synth) -> None:
    outputs = dev.json["Outputs"]
    policy_ids = set(dev.resources("AWS::IAM::ManagedPolicy"))
    for logical, out_id in [("lr-test-sales", "ProducerPolicyArnLrTestSales"),
                            ("lr-test-events", "ProducerPolicyArnLrTestEvents"),
                            ("lr-test-partner-drop", "ProducerPolicyArnLrTestPartnerDrop")]:
        out = outputs[out_id]
        assert out["Value"]["Ref"] in policy_ids  # Ref of a managed policy is its ARN
        assert out["Export"]["Name"] == f"lakeroute-dev-{out_id}"
        assert logical in out["Description"]


def test_no_producer_may_read_list_or_delete(dev: Synth) -> None:
    for policy in producer_policies(dev).values():
        for st in statements(policy):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert set(actions) <= set(UPLOAD), actions


def test_a_new_bucket_gets_its_policy_and_output(dev: Synth, dev_new_bucket: Synth) -> None:
    assert "ProducerPolicyArnLrTestClicks" not in dev.json["Outputs"]
    (st,) = statements(producer_policies(dev_new_bucket)["lr-test-clicks"])
    assert st["Resource"] == f"arn:aws:s3:::{physical(dev_new_bucket, 'lr-test-clicks')}/clicks/*"


def test_stage_overrides_change_the_bucket_in_the_policy(prod_overridden: Synth) -> None:
    policies = producer_policies(prod_overridden)
    (sales,) = statements(policies["lr-test-sales"])
    assert sorted(sales["Resource"]) == ["arn:aws:s3:::acme-sales-uploads/orders/*",
                                         "arn:aws:s3:::acme-sales-uploads/refunds/*"]
    (events,) = statements(policies["lr-test-events"])  # imported under its retained name
    from .fixtures import RETAINED_EVENTS_BUCKET

    assert events["Resource"] == f"arn:aws:s3:::{RETAINED_EVENTS_BUCKET}/*"


def test_a_bucket_with_a_kms_key_adds_the_key_and_nothing_else() -> None:
    """The stack's landing buckets use SSE-S3 (no key, no kms: statement, above); a bucket with
    a KMS key gets data-key generation and decrypt (multipart completion) on that key only."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from stacks.naming import LandingBucket
    from stacks.producers import ProducerPolicies
    from stacks.route_plan import LandingBucketPlan

    stack = Stack(App(), "KmsProducers")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    encrypted = s3.Bucket(stack, "Encrypted", bucket_name="enc-landing", encryption_key=key)
    plain = s3.Bucket(stack, "Plain", bucket_name="plain-landing")
    plan = LandingBucketPlan(name="x", existing=False, notification_prefixes=("in/",), routes=("r",))
    producers = ProducerPolicies(stack, "Producers", stage="dev", landing=[
        LandingBucket(logical="enc", physical="enc-landing", imported=False, plan=plan),
        LandingBucket(logical="plain", physical="plain-landing", imported=False, plan=plan),
    ], buckets={"enc": encrypted, "plain": plain})
    template = Template.from_stack(stack).to_json()
    by_bucket = {name: template["Resources"][stack.resolve(policy.node.default_child.logical_id)]
                 ["Properties"]["PolicyDocument"]["Statement"] for name, policy in producers.policies.items()}
    key_id = next(k for k, v in template["Resources"].items() if v["Type"] == "AWS::KMS::Key")
    upload, kms_statement = by_bucket["enc"]
    assert sorted(upload["Action"]) == UPLOAD
    assert sorted(kms_statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms_statement["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (only,) = by_bucket["plain"]
    assert sorted(only["Action"]) == UPLOAD
