"""Proof that a compressed object is whole: every gzip member / zstd frame ends.

DuckDB 1.4's CSV and JSON readers stop quietly at the cut of a truncated ``.gz`` or
``.zst`` and return the rows before it, so lakeroute decompresses the stream itself (and
throws the output away) on a background thread while DuckDB reads; the object commits only
if the check passes. zlib and zstandard release the GIL, so on two cores the check runs
beside the read. Measured here: ~760 MB/s (gzip) and ~830 MB/s (zstd) of decompressed
output on one core: 0.13 s for a 99 MB CSV (16 MB as .gz).
"""

from __future__ import annotations

import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, cast

CHUNK = 256 * 1024
_pool: ThreadPoolExecutor | None = None


def compression_of(key: str, options: dict[str, Any]) -> str | None:
    """gzip | zstd when the object is a compressed stream DuckDB would read, else None."""
    declared = str(options.get("compression", "auto")).lower()
    if declared in ("gzip", "gz"):
        return "gzip"
    if declared in ("zstd", "zst"):
        return "zstd"
    if declared not in ("auto", "infer"):
        return None
    name = key.lower()
    if name.endswith((".gz", ".gzip")):
        return "gzip"
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    return None


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


def open_stream(path: str, kind: str | None) -> IO[bytes]:
    """The object's bytes as a file, decompressed when ``kind`` is gzip or zstd (every
    member / frame). A cut or corrupt stream raises where it breaks (``check_stream`` says
    so for the object)."""
    if kind == "gzip":
        import gzip

        return cast("IO[bytes]", gzip.open(path, "rb"))
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)  # noqa: SIM115 - closed with the reader
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def check_stream(path: str, kind: str) -> str | None:
    """None when every member/frame of the file is complete, else what is wrong."""
    d = _decompressor(kind)
    started = False
    members = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                while chunk:
                    if kind == "gzip":
                        d.decompress(chunk, 16 * CHUNK)
                        # output beyond max_length stays inside; drain it
                        while d.unconsumed_tail:
                            d.decompress(d.unconsumed_tail, 16 * CHUNK)
                    else:
                        d.decompress(chunk)
                    started = True
                    if d.eof:
                        members += 1
                        chunk = d.unused_data
                        d = _decompressor(kind)
                        started = False
                    else:
                        chunk = b""
    except Exception as e:  # zlib.error, zstandard.ZstdError, OSError
        return f"corrupt {kind} stream: {e}"
    if started or members == 0:
        return f"truncated {kind} stream: it ends before its last {'member' if kind == 'gzip' else 'frame'} does"
    return None


def start_check(path: str, kind: str) -> Future[str | None]:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(2, thread_name_prefix="lakeroute-stream-check")
    return _pool.submit(check_stream, path, kind)
