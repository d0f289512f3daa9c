from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.catalogs import catalog_kind  # noqa: F401 - fixture of the moto tests
from tests.support.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)

