"""The stage catalogs a moto test can run on (Glue, S3 Tables).

A deployment fixture that takes ``catalog_kind`` builds its ``Deployment`` with it
(``Deployment.with_catalog``); ``@CATALOGS`` on a test runs it on both catalogs. The fixture is
imported by ``tests/integration/conftest.py`` and ``tests/reliability/conftest.py``.
"""

from __future__ import annotations

import pytest

CATALOGS = pytest.mark.parametrize("catalog_kind", ["glue", "s3tables"], indirect=True)


@pytest.fixture
def catalog_kind(request: pytest.FixtureRequest) -> str:
    """``glue`` unless the test is ``@CATALOGS``."""
    return str(getattr(request, "param", "glue"))
