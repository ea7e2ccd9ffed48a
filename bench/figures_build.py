"""Figures build: a full build of the 12 paper figures and a no-change rebuild.

Upstream runs 12 scripts one after another: about 32 s on a 2-core machine (paper-figures.md 1).
Measured here, each ``--repeat`` times:

* ``cli full``: ``mlpower figures build --out <fresh dir>`` as a new process (Python start-up,
  imports, reading the CSVs, computing, rendering 12 PNGs at 300 dpi and 12 SVGs, writing JSON),
  the counterpart of upstream's ``run_all.sh``;
* ``in-process full``: ``build()`` into a fresh folder with everything imported (the service's case);
* ``cli no-change`` and ``in-process no-change``: the same build again with unchanged inputs.

    .venv/bin/python -m bench.figures_build [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UPSTREAM_S = 32.0
TARGET_FULL_S = UPSTREAM_S / 5
TARGET_NO_CHANGE_S = 0.5


CPU: list[float] = []  # CPU seconds (user + sys, all processes) of each "cli full": independent of the load


def _cli(out: Path, workers: int, *, record_cpu: bool = False) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlpower.cli", "figures", "build", "--out", str(out), "--workers", str(workers)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if record_cpu:
        CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from mlpower.figures.build import build
    from mlpower.figures.settings import FiguresSettings
    from mlpower.settings import load_settings

    data_dir = load_settings(FiguresSettings).data_dir
    timings: dict[str, list[float]] = {
        "cli full": [],
        "cli no-change": [],
        "in-process full": [],
        "in-process no-change": [],
    }
    load = []
    with tempfile.TemporaryDirectory(prefix="figures-bench-") as tmp:
        for i in range(args.repeat):
            load.append(os.getloadavg()[0])
            out = Path(tmp) / f"cli-{i}"
            timings["cli full"].append(_cli(out, args.workers, record_cpu=True))
            timings["cli no-change"].append(_cli(out, args.workers))
            out = Path(tmp) / f"inproc-{i}"
            report = build(out, data_dir, workers=args.workers)
            assert len(report.rendered) == 12, report
            timings["in-process full"].append(report.seconds)
            again = build(out, data_dir, workers=args.workers)
            assert again.rendered == [], again
            timings["in-process no-change"].append(again.seconds)
            shutil.rmtree(out)
    summary = {
        name: {"median_s": round(statistics.median(v), 3), "min_s": round(min(v), 3), "max_s": round(max(v), 3)}
        for name, v in timings.items()
    }
    print(
        json.dumps(
            {
                "workers": args.workers,
                "repeat": args.repeat,
                "cpus": os.cpu_count(),
                "load_average_1min": [round(x, 2) for x in load],
                "cli_full_cpu_s_median": round(statistics.median(CPU), 3),
                "results": summary,
            },
            indent=1,
        )
    )
    print()
    print("| measurement | median | min | max | target |")
    print("|---|---|---|---|---|")
    targets = {
        "cli full": TARGET_FULL_S,
        "in-process full": TARGET_FULL_S,
        "cli no-change": TARGET_NO_CHANGE_S,
        "in-process no-change": TARGET_NO_CHANGE_S,
    }
    for name, s in summary.items():
        print(f"| {name} | {s['median_s']:.3f} s | {s['min_s']:.3f} s | {s['max_s']:.3f} s | <= {targets[name]:g} s |")


if __name__ == "__main__":
    main()
