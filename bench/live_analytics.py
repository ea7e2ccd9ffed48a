"""What live analytics costs per page, and judging a finished run, against the run's length.

Live analytics evaluates the live rules of the one rule table (coverage, uncertainty, overrange,
sampling interval, flagged samples) over the run so far on every page, so its cost per page grows
with the run; the budget is the page period (1 s with the director's defaults at 1 Hz).

``.venv/bin/python -m bench.live_analytics [--minutes 10 60] [--page-samples 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from mlpower.analytics.check import check_view
from mlpower.analytics.live import LiveChecker
from mlpower.runstream import RunStream
from mlpower.runview import RunView
from mlpower.schema import RunDocument, SourceInfo

T0_UTC_S = 1_795_891_000.0


def run_documents(minutes: float, page_samples: int) -> list[RunDocument]:
    """A bus-mode-like testing run at 1 Hz and 250 W with LoadGen's marks, paged as the director pages."""
    stream = RunStream(None, dict(run_id="bench", lab="lab", sut="sut", analyzer="a", t_utc_s=T0_UTC_S,
                                  settings={"workload": "builtin:offline", "debug": False}))
    docs: list[RunDocument] = [stream.start, stream.descriptor(stream="a", sample_interval_s=1.0,
                                                               source=SourceInfo(kind="wt310e"))]
    n = int(minutes * 60) + 20
    docs.append(stream.mark("testing_begin", mode="testing", t_utc_s=T0_UTC_S))
    for lo in range(0, n, page_samples):
        t = [T0_UTC_S + 0.5 + i for i in range(lo, min(lo + page_samples, n))]
        k = len(t)
        docs.append(stream.page("a", mode="testing", t_utc_s=t, power_w=[250.0] * k, voltage_v=[230.0] * k,
                                current_a=[1.1] * k, power_factor=[0.99] * k, voltage_range_v=[300.0] * k,
                                current_range_a=[2.0] * k, uncertainty_w=[0.8] * k, flags=[0] * k))
        if lo <= 5 < lo + page_samples:
            docs.append(stream.mark("power_begin", mode="testing", t_utc_s=T0_UTC_S + 5.2, source="loadgen"))
    docs.append(stream.mark("power_end", mode="testing", t_utc_s=T0_UTC_S + n - 10.3, source="loadgen"))
    docs.append(stream.stop("success", t_utc_s=T0_UTC_S + n))
    return docs


def measure(minutes: float, page_samples: int) -> dict[str, float]:
    docs = run_documents(minutes, page_samples)
    live = LiveChecker("bench")
    per_page = []
    for document in docs:
        started = time.perf_counter()
        live.feed(document)
        if document.type == "run.page":  # type: ignore[attr-defined]
            per_page.append(time.perf_counter() - started)
    started = time.perf_counter()
    report = check_view(RunView.from_documents(docs))
    judged = time.perf_counter() - started
    assert not live.findings and report.finding("coverage").status == "pass", live.findings
    return {"pages": len(per_page), "p50_ms": statistics.median(per_page) * 1e3,
            "last_10pct_ms": statistics.mean(per_page[-max(1, len(per_page) // 10):]) * 1e3,
            "total_s": sum(per_page), "judge_s": judged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--page-samples", type=int, default=1)
    args = parser.parse_args()
    print("| run | pages | live per page p50 | live per page, last 10 % of the run | live total | "
          "evaluate + summary after the run |")
    print("|---|---|---|---|---|---|")
    for minutes in args.minutes:
        m = measure(minutes, args.page_samples)
        print(f"| {minutes:g} min at 1 Hz, pages of {args.page_samples} | {m['pages']:.0f} | {m['p50_ms']:.2f} ms | "
              f"{m['last_10pct_ms']:.2f} ms | {m['total_s']:.2f} s | {m['judge_s'] * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
