"""A warm 10-object SQS batch on moto's server: the AWS calls it makes, counted per operation.
One ledger look-up per table per batch before reading (DynamoDB BatchGetItem), not one per
object."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient

from tests.integration.test_aws_e2e import Lake, lake, orders  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every AWS call the process makes, as 'service:Operation' (the call itself goes on)."""
    seen: Counter[str] = Counter()
    real = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        seen[f"{self._service_model.service_name}:{operation}"] += 1
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    yield seen


def test_a_warm_batch_looks_the_ledger_up_once(lake: Lake, calls: Counter[str]) -> None:  # noqa: F811
    lake.sync()
    lake.put("lr-sales", "orders/warm.parquet", orders(0))
    assert lake.invoke(lake.receive()).get("batchItemFailures") == []  # the runtime is warm after it
    keys = [f"orders/{i}.parquet" for i in range(1, 11)]
    for i, key in enumerate(keys, start=1):
        lake.put("lr-sales", key, orders(i))
    event = lake.receive()
    assert len(event["Records"]) == 10
    calls.clear()
    result = lake.invoke(event)
    counted = dict(sorted(calls.items()))
    print(f"\n[warm 10-object batch] {sum(calls.values())} AWS calls: {counted}")
    assert result.get("batchItemFailures") == []
    assert sorted(r["_source_key"] for r in lake.rows("sales.orders")) == sorted(["orders/warm.parquet", *keys])
    # one look-up before reading (core.pipeline.lookahead), one under the commit (core.write.commit
    # checks again what the table holds by then); one per object before: 11
    assert calls["dynamodb:BatchGetItem"] == 2
    assert calls["s3:HeadObject"] == 10 and calls["s3:GetObject"] == 10
