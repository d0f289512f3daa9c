"""The docs hold together: the README is a front door that links every page, every relative
link (and anchor) resolves, the CLI reference is the commands' --help, the benchmark table has
its markers for the generator."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from lakeroute.cli.reference import STALE, render

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))  # docs/_incoming/ is folded in later: not checked
REQUIRED = ("routes", "write-modes", "schema-drift", "operations", "recovery", "guarantees",
            "benchmarks", "catalogs", "layout", "cli")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans removed (links there are text)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(path.read_text()) if path.suffix == ".md" else []:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def broken_links(md: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for line in prose_lines(md.read_text()):
        for m in LINK.finditer(line):
            target = m.group("target")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            if not dest.exists():
                problems.append(f"{md.relative_to(root)}: {target}: no such file")
            elif anchor and anchor not in anchors(dest):
                problems.append(f"{md.relative_to(root)}: {target}: no heading #{anchor} in {dest.name}")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = [p for md in [README, *PAGES] for p in broken_links(md)]
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Deploying to AWS\n\n## Deploying to AWS\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#deploying-to-aws-1) [ok](#page) [gone](missing.md) [bad](other.md#nope)\n"
                    "`[code](not-checked.md)`\n```\n[fenced](not-checked.md)\n```\n# Page\n")
    assert broken_links(page, tmp_path) == ["page.md: missing.md: no such file",
                                            "page.md: other.md#nope: no heading #nope in other.md"]


def test_the_readme_is_a_front_door_that_links_every_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 300, "README.md is the front door: at most 300 lines; move the rest to docs/"
    for heading in ("## Two commands", "## A first route", "## Deploy", "## Where to go next"):
        assert heading in text.splitlines(), f"README.md lost its section {heading!r}"
    assert "make demo" in text and "make test" in text and "make synth" in text and "npx cdk deploy" in text
    names = {p.stem for p in PAGES}
    assert set(REQUIRED) <= names, f"missing docs pages: {sorted(set(REQUIRED) - names)}"
    unlinked = [p.name for p in PAGES if p.name != "README.md" and f"](docs/{p.name}" not in text]
    assert not unlinked, f"README.md links no page {unlinked}"


def test_the_cli_reference_is_the_commands_help() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render(), STALE
    commands = re.findall(r"^## (lakeroute.*)$", committed, re.M)
    assert "lakeroute quarantine dismiss" in commands and "lakeroute schema" in commands
    sections = committed.split("\n## lakeroute")[1:]
    no_example = [s.split("\n", 1)[0] for s in sections if "Example: lakeroute" not in s]
    assert not no_example, f"the reference promises an example in every --help; none in: {no_example}"


def test_the_benchmark_table_sits_between_its_markers() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text.count("<!-- bench-table:begin -->") == 1 and text.count("<!-- bench-table:end -->") == 1
    table = text.split("<!-- bench-table:begin -->")[1].split("<!-- bench-table:end -->")[0]
    rows = [line for line in table.strip().splitlines() if line.startswith("|")]
    assert len(rows) >= 3 and rows[1].startswith("|---"), "a Markdown table (header, rule, rows)"


def test_no_text_in_angle_brackets_that_github_would_take_for_html() -> None:
    """`landing/<bucket>/<key>` outside code renders as landing// on GitHub: the tag is dropped."""
    found = [f"{md.relative_to(ROOT)}: {line.strip()[:100]}" for md in [README, *PAGES]
             for line in prose_lines(md.read_text())
             if re.search(r"<(?!!--|https?:)[A-Za-z/][^>]*>", line)]
    assert not found, "wrap these in backticks (or escape <):\n" + "\n".join(found)
