"""Infra test fixtures: the synthesized route sets (``dev``, ``prod``, ...) are session fixtures
in ``fixtures.py``, imported by ``tests/conftest.py`` so that the moto deploy tests share them.
"""

from tests.infra.fixtures import RETAINED_EVENTS_BUCKET

__all__ = ["RETAINED_EVENTS_BUCKET"]
