"""Which route an object takes: the most specific match wins, ties are errors."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from ..errors import NoRouteError, ObjectError
from .model import Route


def could_tie(a: Route, b: Route) -> bool:
    """True when some object could match both routes with equal specificity."""
    sa, sb = a.source, b.source
    if sa.bucket != sb.bucket or a.specificity() != b.specificity() or sa.prefix != sb.prefix:
        return False
    if any(k in sb.metadata and sb.metadata[k] != v for k, v in sa.metadata.items()):
        return False  # disagreeing metadata: disjoint by construction
    if sa.pattern is None or sb.pattern is None:
        return True
    return globs_intersect(sa.pattern, sb.pattern)


def _glob_tokens(pattern: str) -> tuple[str, ...]:
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = pattern.find("]", i + 2)
            if j != -1:
                tokens.append(pattern[i:j + 1])
                i = j + 1
                continue
        if c == "*" and tokens and tokens[-1] == "*":
            i += 1
            continue
        tokens.append(c)
        i += 1
    return tuple(tokens)


def _chars_compatible(x: str, y: str) -> bool:
    if x == "?" or y == "?":
        return True
    if len(x) > 1 and len(y) > 1:
        return True  # two classes: assume they overlap (conservative)
    if len(x) > 1:
        return fnmatch.fnmatchcase(y, x)
    if len(y) > 1:
        return fnmatch.fnmatchcase(x, y)
    return x == y


def globs_intersect(p: str, q: str) -> bool:
    """Whether two fnmatch globs can match a common string (classes assumed to overlap)."""
    tp, tq = _glob_tokens(p), _glob_tokens(q)

    @cache
    def f(i: int, j: int) -> bool:
        if i == len(tp) and j == len(tq):
            return True
        if i < len(tp) and tp[i] == "*":
            if f(i + 1, j):
                return True
            return j < len(tq) and f(i, j + 1)
        if j < len(tq) and tq[j] == "*":
            if f(i, j + 1):
                return True
            return i < len(tp) and f(i + 1, j)
        if i == len(tp) or j == len(tq):
            return False
        return _chars_compatible(tp[i], tq[j]) and f(i + 1, j + 1)

    return f(0, 0)


MetadataProvider = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class RouteTable:
    """Routes grouped by bucket; ``match`` picks the most specific one for an object."""

    by_bucket: Mapping[str, tuple[Route, ...]]

    @classmethod
    def of(cls, routes: Iterable[Route]) -> RouteTable:
        grouped: dict[str, list[Route]] = {}
        for r in routes:
            grouped.setdefault(r.source.bucket, []).append(r)
        return cls({b: tuple(sorted(rs, key=Route.specificity, reverse=True))
                    for b, rs in grouped.items()})

    @property
    def routes(self) -> list[Route]:
        return [r for rs in self.by_bucket.values() for r in rs]

    def candidates(self, bucket: str, key: str) -> list[Route]:
        return [r for r in self.by_bucket.get(bucket, ()) if r.matches_key(key)]

    def ignored(self, bucket: str, key: str) -> str | None:
        """Why the object is ignored (never read, never quarantined), or None.

        Built in: ``_SUCCESS`` markers, ``*.crc`` checksums, anything under a ``_temporary/``
        folder, names starting with ``.`` (what Spark, Hadoop and editors leave behind). Then
        the ``source.exclude`` globs of every route whose prefix covers the key.
        """
        builtin = builtin_ignore(key)
        if builtin:
            return builtin
        for r in self.by_bucket.get(bucket, ()):
            if key.startswith(r.source.prefix):
                rest = key[len(r.source.prefix):]
                for glob in r.source.exclude:
                    if fnmatch.fnmatchcase(rest, glob):
                        return f"excluded by route {r.name} (source.exclude {glob!r})"
        return None

    def needs_metadata(self, bucket: str, key: str) -> bool:
        return any(r.source.metadata for r in self.candidates(bucket, key))

    def match(self, bucket: str, key: str, metadata: MetadataProvider | None = None) -> Route:
        """The winning route; metadata is fetched only when a candidate route asks for it."""
        candidates = self.candidates(bucket, key)
        meta: Mapping[str, str] | None = None
        if any(r.source.metadata for r in candidates):
            meta = metadata() if metadata is not None else {}
        matching = [r for r in candidates
                    if all(meta is not None and meta.get(k) == v for k, v in r.source.metadata.items())]
        if not matching:
            from .nearest import closest  # difflib and the near-miss rules: for an unrouted object only

            raise NoRouteError(bucket, key, closest(self.routes, bucket, key, meta))
        best = matching[0]
        ties = [r.name for r in matching[1:] if r.specificity() == best.specificity()]
        if ties:
            raise ObjectError(
                "route",
                f"ambiguous routes for {bucket}/{key}: {best.name}, {', '.join(ties)}; "
                "run `lakeroute validate` and make one more specific",
            )
        return best


def builtin_ignore(key: str) -> str | None:
    segments = key.split("/")
    name = segments[-1]
    if name == "_SUCCESS":
        return "a _SUCCESS marker (built-in ignore rule)"
    if name.endswith(".crc"):
        return "a .crc checksum file (built-in ignore rule)"
    if name.startswith("."):
        return "a hidden file (name starts with '.', built-in ignore rule)"
    if "_temporary" in segments[:-1]:
        return "under a _temporary/ folder (built-in ignore rule)"
    return None
