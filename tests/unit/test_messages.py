"""Messages are shortened at a word boundary with an ellipsis, never cut mid-word (one helper,
``core.errors.shortened``, used wherever a message is cut)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lakeroute.core.errors import ELLIPSIS, ObjectError, one_line, shortened, translated

PACKAGE = Path(__file__).resolve().parents[2] / "lambda_src" / "lakeroute"


def test_a_short_message_is_only_put_on_one_line() -> None:
    assert shortened("route a:\n  bad   value\tin column x") == "route a: bad value in column x"


def test_a_long_message_is_cut_between_words_with_an_ellipsis() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 20
    out = shortened(text, 60)
    assert len(out) <= 60 and out.endswith(" " + ELLIPSIS)
    kept = out[: -len(ELLIPSIS)].split()
    assert kept == text.split()[: len(kept)], "every kept word is whole"


def test_a_giant_word_keeps_its_start_and_the_words_after_it() -> None:
    # DuckDB quotes the offending CSV line whole: one "word" of megabytes.
    text = "CSV Error on Line: 3 Original Line: 2," + "x" * 3_000_000 + " Maximum line size exceeded."
    out = shortened(text, 200)
    assert len(out) <= 200 and out.startswith("CSV Error on Line: 3 Original Line: 2,xxx")
    assert out.endswith("Maximum line size exceeded.") and ("2," + "x" * 77 + ELLIPSIS + " ") in out
    assert shortened("y" * 50, 20) == "y" * 19 + ELLIPSIS  # one word longer than the limit: its start


def test_translated_errors_and_one_line_use_it() -> None:
    e = ValueError("bad " * 300)
    assert one_line(e).endswith(ELLIPSIS) and len(one_line(e)) <= 400
    assert one_line(ValueError()) == "ValueError"
    out = translated(RuntimeError("word " * 500), "read", "r1")
    assert isinstance(out, ObjectError) and out.message.endswith(" " + ELLIPSIS)
    assert not re.search(r"\bwor" + ELLIPSIS, out.message)


def test_no_module_cuts_a_message_with_a_slice() -> None:
    """A slice like ``str(e)[:400]`` or ``message[:500]`` cuts mid-word: use ``shortened``."""
    offenders = []
    wording = re.compile(r"message|text|why|reason|str\(|split\(\)|body|value|dumps|example")
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
                    and node.slice.lower is None and isinstance(node.slice.upper, ast.Constant)
                    and isinstance(node.slice.upper.value, int) and node.slice.upper.value >= 40
                    and wording.search(ast.unparse(node.value))):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, offenders
