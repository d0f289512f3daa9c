"""cdk-nag acknowledgments: one per finding, each with the reason it is accepted.

cdk-nag 3.x runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``);
a finding that is not acknowledged makes the synth fail. An acknowledgment names exactly one
finding (``AwsSolutions-IAM4``, or ``AwsSolutions-IAM5[Resource::...]`` for one wildcard) on
the construct that produces it (it covers the resources below that construct), so a new
wildcard or a new resource is a new, visible finding.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding (``AwsSolutions-XXX[...]``) on ``scope``."""
    if not rule.startswith(f"{PACK}-"):
        raise ValueError(f"not an {PACK} rule id: {rule!r}")
    if len(reason.strip()) < 30:
        raise ValueError(f"acknowledgment of {rule} needs a specific reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{rule}", reason=reason))


def nag_value(scope: IConstruct, value: Any) -> str:
    """How cdk-nag spells a (possibly token) string in a finding id.

    ``Ref`` becomes ``<Name>``, ``Fn::GetAtt`` ``<Logical.Attr>``, ``Fn::Join`` is joined; so the
    id of a wildcard resource is computed from the same value the policy uses, whatever the
    environment (literal or ``<AWS::Region>``) and the logical ids.
    """

    def render(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, dict) and len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                return f"<{arg}>"
            if fn == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if fn == "Fn::Join":
                return arg[0].join(render(p) for p in arg[1])
        return json.dumps(v, sort_keys=True)

    return render(Stack.of(scope).resolve(value))


def acknowledge_wildcard_resource(scope: IConstruct, resource: Any, reason: str) -> None:
    """Acknowledge the IAM5 finding of one wildcard resource ARN granted to ``scope``."""
    acknowledge(scope, f"{PACK}-IAM5[Resource::{nag_value(scope, resource)}]", reason)
