"""DynamoDB attribute values to and from JSON-like Python."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def to_attr(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    plain = json.loads(json.dumps(value), parse_float=Decimal)  # DynamoDB numbers: no floats
    return dict(TypeSerializer().serialize(plain))


def from_attr(attr: Mapping[str, Any]) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return plain(TypeDeserializer().deserialize(dict(attr)))


def plain(value: Any) -> Any:
    """DynamoDB values as JSON-like Python: Decimal -> int/float, sets -> sorted lists."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return float(value) if isinstance(exponent, int) and exponent < 0 else int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def item_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: from_attr(v) for k, v in raw.items()}
