"""cfn-lint of the stacks the last synth wrote: the templates its cloud assembly lists.

``cdk synth -o DIR`` rewrites ``DIR/manifest.json`` but leaves the templates of earlier synths
in ``DIR`` (``make synth STAGE=prod`` after ``STAGE=dev`` keeps ``lakeroute-dev.template.json``),
so linting ``DIR/*.template.json`` would lint a stale stage too. This lints exactly the
``aws:cloudformation:stack`` artifacts of the manifest (nested assemblies included).

Run as a script (``make synth`` does; it imports no CDK): ``python stacks/lint_templates.py
[DIR]`` (default ``cdk.out``). Exit code: cfn-lint's; 2 with one ``error:`` line when DIR holds
no cloud assembly or the assembly no stack.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

STACK = "aws:cloudformation:stack"
NESTED = "cdk:cloud-assembly"


def stack_templates(assembly: Path) -> list[Path]:
    """The template file of every stack artifact of ``assembly``'s manifest, in manifest order."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    found: list[Path] = []
    for artifact in (manifest.get("artifacts") or {}).values():
        props = artifact.get("properties") or {}
        if artifact.get("type") == STACK:
            found.append(assembly / props["templateFile"])
        elif artifact.get("type") == NESTED:
            found += stack_templates(assembly / props["directoryName"])
    return found


def cfn_lint_command() -> list[str]:
    # The venv's console script next to this interpreter (make runs it through `uv run`).
    beside = Path(sys.executable).with_name("cfn-lint")
    found = str(beside) if beside.is_file() else shutil.which("cfn-lint")
    if found is None:
        raise FileNotFoundError("cfn-lint is not installed: run `make setup`")
    return [found]


def main(argv: list[str]) -> int:
    assembly = Path(argv[0]) if argv else Path("cdk.out")
    if not (assembly / "manifest.json").is_file():
        print(f"error: {assembly}: no cloud assembly (manifest.json); run `make synth` first", file=sys.stderr)
        return 2
    templates = stack_templates(assembly)
    if not templates:
        print(f"error: {assembly}/manifest.json lists no stack; nothing to lint", file=sys.stderr)
        return 2
    try:
        command = cfn_lint_command()
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("cfn-lint " + " ".join(str(t) for t in templates), file=sys.stderr)
    return subprocess.run([*command, *map(str, templates)], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
