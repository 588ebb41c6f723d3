"""``probe demo`` from an empty store against its budget of 5 minutes on 2 cores.

    python benchmarks/demo.py

Prints the wall and CPU seconds of the whole command (training, analyses, the parity claims)
and their ratio to the 300 s budget, then the same command again on the filled store (it only
loads). CPU seconds are the child's user + system time, which other load on the machine
inflates less than the wall time.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

BUDGET_S = 300.0


def timed(store: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "probe.cli", "demo", "--store", store, "--no-app"], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PROBE_PROGRESS": "off"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="probe-demo-") as store:
        for label in ("empty store", "filled store"):
            wall, cpu = timed(store)
            print(f"probe demo, {label}: {wall:.0f} s wall ({wall / BUDGET_S:.2f} of the budget), {cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
