"""Only the unpartitioned upsert scenarios of ``write_modes`` (the default, no mode declared:
lakeroute chooses per commit; then declared merge-on-read and declared copy-on-write, each
against PyIceberg's ``Table.upsert`` measured in the same run), with the load average before
and after. ``run.py --only write_modes`` runs them too, with replace, overwrite and the
bucket(64) tables.

    .venv/bin/python benchmarks/upsert_only.py [--quick] [--profile] [OUT.json]   (REPEAT=3 by default;
    --profile: pyinstrument profiles of lakeroute in benchmarks/.work/profiles/)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
from harness import WORK, Options, reset  # noqa: E402
from scenarios import write_modes_upsert  # noqa: E402


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    out = Path(next((a for a in argv if a.endswith(".json")), str(WORK / "upsert-only.json")))
    write_modes_upsert.LAYOUTS = (None,)
    sizes = data.Sizes.quick() if quick else data.Sizes()
    repeat = 1 if quick else int(os.environ.get("REPEAT", "3"))
    opt = Options(sizes=sizes, repeat=repeat, profile="--profile" in argv, reference_large=False, cold_table=False)
    before, start = os.getloadavg(), time.monotonic()
    results = write_modes_upsert.scenario_upsert(opt, reset(WORK / "write_modes_upsert_only"))
    after = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load_before": before, "load_after": after, "cpus": os.cpu_count(),
                               "seconds": time.monotonic() - start, "results": results}, indent=1, default=str))
    for name, r in results.items():
        print(name, json.dumps(r["metrics"], default=str))
    print(f"load average before {before}, after {after}; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
