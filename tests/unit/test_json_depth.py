"""The JSON nesting scan (``core.read.depth``) against Python's own reading of the same text:
brackets inside strings never count, escapes are honoured, lines are numbered right, pieces
cut inside a line change nothing. Real files, gzip and zstd included."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
import zstandard
from lakeroute.core.read import depth

TRICKY = ['[', ']', '{', '}', '"', '\\', '\\"', '\\\\', "]]]", "[{", "é", "\n", "\t", "\u2028", "x"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random, levels: int) -> Any:
    """A value nesting exactly ``levels`` containers deep (0: a scalar)."""
    if levels == 0:
        return rng.choice([_text(rng), rng.randint(-5, 5), None, True, 1.5])
    siblings = [_value(rng, rng.randint(0, min(2, levels - 1))) for _ in range(rng.randint(0, 2))]
    deep = _value(rng, levels - 1)
    items = siblings + [deep]
    rng.shuffle(items)
    if rng.random() < 0.5:
        return items
    return {f"{_text(rng)}#{i}": v for i, v in enumerate(items)}


def _levels(v: Any) -> int:
    children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
    return 0 if children is None else 1 + max((_levels(c) for c in children), default=0)


def _write(path: Path, text: str, compression: str | None) -> str:
    data = text.encode("utf-8")
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_lines_deeper_than_the_limit_and_only_those(tmp_path: Path, compression: str | None) -> None:
    rng = random.Random(7)
    values = [_value(rng, rng.randint(1, 40)) for _ in range(300)]
    lines = [json.dumps(v, ensure_ascii=rng.random() < 0.5) for v in values]
    assert all(_levels(json.loads(line)) == _levels(v) for line, v in zip(lines, values, strict=True))
    path = _write(tmp_path / "x.jsonl", "\n".join(lines) + "\n", compression)
    for limit in (5, 20, 39):
        found = depth.scan(path, compression, limit, per_line=True, first_only=False)
        expected = [(n, _levels(v)) for n, v in enumerate(values, start=1) if _levels(v) > limit]
        assert found.deep == expected and found.lines == len(values)


def test_strings_full_of_brackets_count_for_nothing(tmp_path: Path) -> None:
    text = json.dumps({"a": "[" * 5000, "b": "]" * 5000 + '\\"[[', "c": [[1]], "d": "{" * 3000}) + "\n"
    path = _write(tmp_path / "s.json", text, None)
    assert depth.scan(path, None, 3).deep == [] and depth.scan(path, None, 2).deep == [(1, 3)]


def test_closing_brackets_in_strings_do_not_hide_depth(tmp_path: Path) -> None:
    # Written out: Python's json module cannot nest this deep.
    text = '{"x": "' + "]" * 3000 + '", "y": "' + "}" * 3000 + '", "z": ' + "[" * 1500 + "1" + "]" * 1500 + "}\n"
    path = _write(tmp_path / "f.json", text, None)
    assert depth.scan(path, None).deep == [(1, 1501)]


def test_a_document_over_many_lines_carries_its_depth(tmp_path: Path) -> None:
    """One container opened per line, strings with brackets between (written out: Python's
    json module cannot nest this deep)."""
    for levels in (999, 1000, 1001, 1400):
        opening = [" " * i + ('{"s": "]]}", "n":' if i % 2 == 0 else '[1, "}]",') for i in range(levels)]
        closing = [" " * i + ("}" if i % 2 == 0 else "]") for i in reversed(range(levels))]
        path = _write(tmp_path / "doc.json", "\n".join([*opening, "0", *closing]) + "\n", None)
        found = depth.scan(path, None)
        assert bool(found.deep) == (levels > depth.MAX_DEPTH), levels
        if found.deep:
            assert found.deep[0] == (depth.MAX_DEPTH + 1, depth.MAX_DEPTH + 1), "the line where it passes"
            assert "nests at least" in found.describe()


def test_pieces_cut_inside_long_lines_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    values = [_value(rng, rng.randint(1, 30)) for _ in range(60)]
    lines = [json.dumps(v) for v in values]
    path = _write(tmp_path / "x.jsonl", "\n".join(lines) + "\n", None)
    whole = depth.scan(path, None, 12, per_line=True, first_only=False)
    monkeypatch.setattr(depth, "PIECE", 7)  # lines of more than 16 pieces are cut: strings, escapes
    cut = depth.scan(path, None, 12, per_line=True, first_only=False)
    assert [n for n, _ in cut.deep] == [n for n, _ in whole.deep] == [
        n for n, v in enumerate(values, start=1) if _levels(v) > 12]
