"""Why an object does not take a route, and the route it nearly takes.

Keys and globs are case-sensitive and a glob names one extension, so `pattern: "*.CSV"`
against `x.csv`, or `*.csv` against `x.csv.gz`, matches nothing, silently. These helpers say
so, with the glob that would match: for `ingest` of an object no route takes
(``NoRouteError`` names the closest route and the reason) and for `validate` (a route whose
prefix, pattern or exclude matches none of the sample folder's files).
"""

from __future__ import annotations

import difflib
import fnmatch
import posixpath
from collections.abc import Iterable, Mapping

from .model import Route


def near_miss(glob: str, names: Iterable[str], extension: bool = True) -> str | None:
    """The first way one of ``names`` (none of which matches ``glob``) nearly matches it: by
    case first, then (``extension``) by its extension; None when none is near."""
    listed = list(names)
    for kind in (("case", "extension") if extension else ("case",)):
        for name in listed:
            found = glob_near_miss(glob, name, kind)
            if found:
                return found
    return None


def glob_near_miss(glob: str, name: str, kind: str = "case") -> str | None:
    """How ``name`` nearly matches ``glob`` (which it does not), by ``kind`` (case or
    extension), with the glob that would match; None when it is not near that way."""
    if kind == "case":
        if not fnmatch.fnmatchcase(name.lower(), glob.lower()):
            return None
        fix = next((g for g in (glob.lower(), glob.upper()) if fnmatch.fnmatchcase(name, g)), None)
        better = f"write {fix!r}" if fix else "match the file's case"
        return f"{name!r} would match ignoring case (globs are case-sensitive): {better}"
    base, ext = posixpath.splitext(glob)
    if not ext or any(c in ext for c in "*?["):
        return None
    if fnmatch.fnmatchcase(name, glob + ".*"):  # a further extension: x.csv.gz
        further = name[name.rfind("."):]
        return (f"{name!r} has a further extension {further!r}: write {glob + further!r} "
                f"(or {glob + '*'!r})")
    other = posixpath.splitext(name)[1]
    if fnmatch.fnmatchcase(name, base + ".*") and _family(other) == _family(ext) is not None:
        return f"{name!r} has the extension {other!r}, not {ext!r}: write {base + other!r}"
    return None


# Extensions of one kind of file: `*.csv` over `x.tsv` is a near miss, over `x.parquet` a
# different file (another route's, most likely).
_FAMILIES = ({".csv", ".tsv", ".txt", ".psv", ".dat"}, {".json", ".jsonl", ".ndjson"},
             {".parquet", ".parq", ".pq"})


def _family(ext: str) -> int | None:
    return next((i for i, f in enumerate(_FAMILIES) if ext.lower() in f), None)


def prefix_near_miss(prefix: str, key: str) -> str | None:
    """How ``key`` nearly lies under ``prefix`` (it does not): the same folders in another case."""
    if prefix and key.lower().startswith(prefix.lower()):
        return (f"{key!r} is under {key[:len(prefix)]!r}, which differs from prefix {prefix!r} in case "
                f"only (keys are case-sensitive): write prefix {key[:len(prefix)]!r}")
    return None


def why_not(route: Route, key: str, metadata: Mapping[str, str] | None) -> tuple[int, str]:
    """(rank, reason) ``route`` does not take ``key``: rank 0 only the metadata differs, 1
    the pattern (or the prefix's case), 2 the prefix; lower is nearer."""
    src = route.source
    if not key.startswith(src.prefix):
        near = prefix_near_miss(src.prefix, key)
        if near:
            return 1, f"prefix {src.prefix!r}: {near}"
        return 2, f"the key is not under its prefix {src.prefix!r}"
    rest = key[len(src.prefix):]
    if src.pattern is not None and not fnmatch.fnmatchcase(rest, src.pattern):
        near = near_miss(src.pattern, [rest])
        return 1, f"pattern {src.pattern!r} does not match {rest!r}" + (f"; {near}" if near else "")
    have = metadata or {}
    wrong = [f"{k}={v!r} (the object has {k + '=' + repr(have[k]) if k in have else 'no ' + k})"
             for k, v in src.metadata.items() if have.get(k) != v]
    if wrong:
        return 0, f"it requires metadata {', '.join(wrong)}"
    return 0, "it matches (another route's tie?)"


def closest(routes: Iterable[Route], bucket: str, key: str, metadata: Mapping[str, str] | None) -> str | None:
    """The nearest route to an object no route takes, and why it does not: routes of the
    object's bucket by rank, then by the longest prefix shared with the key; with none in
    the bucket, the buckets routes do read (the nearest name first)."""
    every = list(routes)
    mine = [r for r in every if r.source.bucket == bucket]
    if not mine:
        buckets = sorted({r.source.bucket for r in every})
        if not buckets:
            return "no route file is loaded"
        near = difflib.get_close_matches(bucket, buckets, n=1, cutoff=0.6)
        listed = ", ".join(buckets[:5]) + (", …" if len(buckets) > 5 else "")
        return (f"no route reads bucket {bucket!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                + f" (routes read: {listed})")
    scored = []
    for r in mine:
        rank, reason = why_not(r, key, metadata)
        shared = len(posixpath.commonprefix([r.source.prefix, key]))
        scored.append((rank, -shared, r.name, reason))
    rank, shared, name, reason = min(scored)
    if rank == 2 and shared == 0:  # no prefix shares even a character: none is nearer than another
        folders = sorted(f"{r.source.prefix or '(whole bucket)'} ({r.name})" for r in mine)
        return (f"no route of bucket {bucket} covers its folder (routes read: {', '.join(folders[:5])}"
                + (", …)" if len(folders) > 5 else ")"))
    return f"closest: route {name}: {reason}"
