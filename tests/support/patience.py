"""How long a test may wait for something that will happen, on a machine that may be busy.

Waits in tests are hang guards and readiness polls, never performance checks (those live in
``benchmarks/``): each is scaled by the machine's load when the wait starts, so a suite run
beside other work (load ~20 on 2 cores) waits longer instead of failing.
"""

from __future__ import annotations

import os


def patience(seconds: float) -> float:
    """``seconds`` on a quiet machine, stretched by the current load per core (at least 3x)."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        per_core = 0.0
    return seconds * max(3.0, 2.0 * per_core)
