"""Listing a local table location (orphan-file removal, ``core.maintenance``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..core.maintain.references import FileInfo, canonical


def local_lister(location: str) -> Iterator[FileInfo]:
    """Every file under a local table location (``file://`` URI or path), recursively."""
    root = canonical(location)
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:  # deleted meanwhile (a concurrent clean-up)
                continue
            yield FileInfo(path, st.st_size, st.st_mtime)
