"""``make bench``: run every benchmark with its defaults, one after the other.

Each benchmark prints its own table; the numbers worth keeping go into bench/README.md by hand,
with the machine and its load, since timings on a shared 2-core machine vary.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("bench.director_latency", "bench.figures_build", "bench.live_analytics", "bench.lab_scale")


def main() -> None:
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        saved, sys.argv = sys.argv, [name]
        try:
            module.main()
        finally:
            sys.argv = saved


if __name__ == "__main__":
    main()
