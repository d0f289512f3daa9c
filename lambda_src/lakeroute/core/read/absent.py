"""Modules that are not installed, answered at once.

DuckDB's Python client looks for pandas on every statement with parameters (twice), and a
module that is absent is searched for on the whole ``sys.path`` each time: ~10 searches per
object for the lineage variables, about as long as reading a small object. A finder first in
``sys.meta_path`` says "no such module" for these names straight away: the same
``ModuleNotFoundError`` the search would end in, for an import statement only (a probe by
``importlib.util.find_spec`` still gets None). Only names absent when it is installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

LOOKED_FOR = ("pandas",)  # what DuckDB's client looks for per call, lakeroute never uses


class AbsentModules(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> Any:
        # Only an import statement is answered: importlib.util.find_spec (how libraries probe
        # for optional modules) must still return None, as the full search would.
        if fullname in self.names and sys._getframe(2).f_code.co_name == "_find_and_load_unlocked":
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def answer_absent(names: Sequence[str] = LOOKED_FOR) -> None:
    """Install the finder once per process, for those of ``names`` that are not installed."""
    if any(isinstance(f, AbsentModules) for f in sys.meta_path):
        return
    missing = frozenset(n for n in names if n not in sys.modules and importlib.util.find_spec(n) is None)
    if missing:
        sys.meta_path.insert(0, AbsentModules(missing))
