"""Figures build: a full paper-mode build of the 12 figures against upstream's scripts, side by side.

Measured, ``--repeat`` times, interleaved so that every kind sees the same machine load:

* ``upstream``: upstream's 12 scripts one after another, as its ``run_all.sh`` runs them (only
  with ``--upstream DIR``: a checkout of aryatschand/MLPerf-Power-HPCA-2025 at 49b63de6, and
  ``--upstream-python``, a Python with its pinned requirements). This repository does not carry
  upstream's code; without a checkout the comparison uses the cost the issue recorded
  (``RECORDED_UPSTREAM``), and says so;
* ``cli full``: ``mlpower figures build --out <fresh dir>`` as a new process (start-up, imports,
  reading the CSVs, computing, 12 PNGs at 300 dpi, 12 SVGs, 12 JSON files);
* ``cli no-change``: the same build again with unchanged inputs and outputs;
* ``in-process full`` / ``no-change``: ``build()`` with everything imported (the service's case).

Each process tree is timed by a small wrapper: wall time, CPU time (user + system of every
process, workers included) and peak RSS (the largest process). Targets: a full build within
0.2x upstream's wall time and 0.25x its CPU time, peak RSS at most 300 MB.

    .venv/bin/python -m bench.figures_build [--repeat 5] [--workers 2] \\
        [--upstream DIR --upstream-python PY] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The measurement of upstream's 12 scripts (one 2-core machine, warm caches).
RECORDED_UPSTREAM = {"wall_s": 15.4, "cpu_s": 16.8, "peak_rss_mb": 265.0}
WALL_RATIO, CPU_RATIO, PEAK_RSS_MB = 0.2, 0.25, 300.0
TARGET_NO_CHANGE_S = 0.5

# Runs a command and reports its tree's wall time, CPU time and largest resident set as JSON.
_MEASURE = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": code, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def measure(command: list[str], cwd: Path | None = None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], cwd=cwd, check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {result['rc']}")
    return result


def upstream_command(checkout: Path, python: str) -> list[str]:
    """run_all.sh's loop: each script in file order, from the checkout's root, into a fresh figures/."""
    scripts = sorted(p.name for p in (checkout / "code").glob("*.py"))
    if len(scripts) != 12:
        raise SystemExit(f"{checkout}/code holds {len(scripts)} scripts, expected upstream's 12")
    loop = "; ".join(f"{python!r} code/{name!r}" for name in scripts)
    return ["sh", "-c", f"rm -rf figures && mkdir figures && {loop}"]


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--upstream", type=Path, help="a checkout of upstream's repository, to measure it here")
    parser.add_argument("--upstream-python", default="python3", help="a Python with upstream's requirements")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()

    from mlpower.figures.build import build
    from mlpower.figures.settings import FiguresSettings
    from mlpower.settings import load_settings

    data_dir = load_settings(FiguresSettings).data_dir
    cli = [sys.executable, "-m", "mlpower.cli", "figures", "build", "--workers", str(args.workers), "--out"]
    runs: dict[str, list[dict[str, float]]] = {"cli full": [], "cli no-change": []}
    if args.upstream:
        runs["upstream"] = []
    in_process: dict[str, list[float]] = {"in-process full": [], "in-process no-change": []}
    load = []
    with tempfile.TemporaryDirectory(prefix="figures-bench-") as tmp:
        for i in range(args.repeat):
            load.append(round(os.getloadavg()[0], 2))
            if args.upstream:
                runs["upstream"].append(measure(upstream_command(args.upstream, args.upstream_python), args.upstream))
            out = Path(tmp) / f"cli-{i}"
            runs["cli full"].append(measure([*cli, str(out)]))
            runs["cli no-change"].append(measure([*cli, str(out)]))
            out = Path(tmp) / f"inproc-{i}"
            report = build(out, data_dir, workers=args.workers)
            assert len(report.rendered) == 12, report
            in_process["in-process full"].append(report.seconds)
            again = build(out, data_dir, workers=args.workers)
            assert again.rendered == [], again
            in_process["in-process no-change"].append(again.seconds)
            shutil.rmtree(out)

    summary = {
        name: {key: summarise([m[key] for m in values]) for key in ("wall_s", "cpu_s", "peak_rss_mb")}
        for name, values in runs.items()
    }
    summary.update({name: {"wall_s": summarise(values)} for name, values in in_process.items()})
    if args.upstream:
        upstream = {key: summary["upstream"][key]["median"] for key in ("wall_s", "cpu_s", "peak_rss_mb")}
        upstream_source = f"measured here ({args.upstream}, {args.repeat} runs, median)"
    else:
        upstream = dict(RECORDED_UPSTREAM)
        upstream_source = "recorded in the issue (upstream's scripts are not part of this repository)"
    full = summary["cli full"]
    verdict = {
        "wall_ratio": round(full["wall_s"]["median"] / upstream["wall_s"], 3),
        "cpu_ratio": round(full["cpu_s"]["median"] / upstream["cpu_s"], 3),
        "peak_rss_mb": full["peak_rss_mb"]["max"],
    }
    verdict["within_targets"] = (
        verdict["wall_ratio"] <= WALL_RATIO
        and verdict["cpu_ratio"] <= CPU_RATIO
        and verdict["peak_rss_mb"] <= PEAK_RSS_MB
    )
    document = {
        "workers": args.workers,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_1min": load,
        "upstream": upstream,
        "upstream_source": upstream_source,
        "results": summary,
        "verdict": verdict,
        "runs": runs,
    }
    if args.json:
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps({k: v for k, v in document.items() if k != "runs"}, indent=1))
    print()
    print(f"upstream: {upstream['wall_s']:.2f} s wall, {upstream['cpu_s']:.2f} s CPU, "
          f"{upstream['peak_rss_mb']:.0f} MB ({upstream_source})")
    print()
    print("| measurement | wall median (min-max) | CPU median (min-max) | peak RSS max | target |")
    print("|---|---|---|---|---|")
    targets = {
        "upstream": "-",
        "cli full": f"wall <= {WALL_RATIO * upstream['wall_s']:.2f} s, CPU <= {CPU_RATIO * upstream['cpu_s']:.2f} s, "
        f"RSS <= {PEAK_RSS_MB:.0f} MB",
        "cli no-change": f"wall < {TARGET_NO_CHANGE_S} s",
    }
    for name, values in summary.items():
        wall = values["wall_s"]
        cpu = values.get("cpu_s")
        rss = values.get("peak_rss_mb")
        print(
            f"| {name} | {wall['median']:.2f} s ({wall['min']:.2f}-{wall['max']:.2f}) | "
            + (f"{cpu['median']:.2f} s ({cpu['min']:.2f}-{cpu['max']:.2f}) | " if cpu else "- | ")
            + (f"{rss['max']:.0f} MB | " if rss else "- | ")
            + targets.get(name, f"wall < {TARGET_NO_CHANGE_S} s" if "no-change" in name else "-")
            + " |"
        )
    print()
    print(
        f"cli full / upstream: wall {verdict['wall_ratio']:.3f} (target <= {WALL_RATIO}), "
        f"CPU {verdict['cpu_ratio']:.3f} (target <= {CPU_RATIO}), "
        f"peak RSS {verdict['peak_rss_mb']:.0f} MB (<= {PEAK_RSS_MB:.0f}): "
        + ("within targets" if verdict["within_targets"] else "NOT within targets")
    )


if __name__ == "__main__":
    main()
