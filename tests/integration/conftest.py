from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def catalog_kind(request: pytest.FixtureRequest) -> str:
    """The stage catalog a moto test's deployment uses: ``glue`` unless a test parametrises it
    (``@pytest.mark.parametrize("catalog_kind", CATALOGS, indirect=True)``)."""
    return str(getattr(request, "param", "glue"))
