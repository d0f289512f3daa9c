#!/usr/bin/env python3
"""Relocate com.fasterxml.jackson -> org.apache.iceberg.shaded.com.fasterxml.jackson in jars.

iceberg-spark-runtime 1.10 (as snowpark-connect-deps-iceberg ships it) references relocated
Jackson classes it does not contain; this rebuilds them from pyspark's own Jackson jars by
rewriting class-file constant-pool Utf8 entries, entry paths and META-INF/services.
A copy of the project's shared tools/relocate_jackson.py, so that `make spark` needs nothing
outside the repository. Usage: relocate_jackson.py OUT.jar IN.jar...
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile

SLASH = re.compile(rb"(?<!shaded/)com/fasterxml/jackson/")
DOT = re.compile(rb"(?<!shaded\.)com\.fasterxml\.jackson\.")
# Constant-pool entry sizes after the tag byte (Utf8, tag 1, has its own length).
SIZES = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2}
SKIPPED_SUFFIXES = ("module-info.class", ".SF", ".RSA")


def rw(b: bytes) -> bytes:
    b = SLASH.sub(b"org/apache/iceberg/shaded/com/fasterxml/jackson/", b)
    return DOT.sub(b"org.apache.iceberg.shaded.com.fasterxml.jackson.", b)


def reloc_class(data: bytes) -> bytes:
    assert data[:4] == b"\xca\xfe\xba\xbe"
    n = struct.unpack(">H", data[8:10])[0]
    out = bytearray(data[:10])
    i, k = 10, 1
    while k < n:
        tag = data[i]
        if tag == 1:
            ln = struct.unpack(">H", data[i + 1:i + 3])[0]
            s = rw(data[i + 3:i + 3 + ln])
            out += bytes([1]) + struct.pack(">H", len(s)) + s
            i += 3 + ln
            k += 1
        else:
            sz = SIZES[tag]
            out += data[i:i + 1 + sz]
            i += 1 + sz
            k += 2 if tag in (5, 6) else 1  # long and double take two slots
    out += data[i:]
    return bytes(out)


def main(dst: str, *srcs: str) -> None:
    seen: set[str] = set()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for src in srcs:
            with zipfile.ZipFile(src) as s:
                for e in s.infolist():
                    name = e.filename
                    if e.is_dir() or name.startswith("META-INF/versions/") or name.endswith(SKIPPED_SUFFIXES):
                        continue
                    data = s.read(name)
                    if name.endswith(".class"):
                        data = reloc_class(data)
                        name = rw(name.encode()).decode()
                    elif name.startswith("META-INF/services/"):
                        data = rw(data)
                        name = rw(name.encode()).decode()
                    elif name.startswith("com/fasterxml/"):
                        name = rw(name.encode()).decode()
                    if name in seen:
                        continue
                    seen.add(name)
                    z.writestr(name, data)


if __name__ == "__main__":
    main(*sys.argv[1:])
