"""The figures service as several replicas over one results volume: a rebuild asked of two at
once is rendered by one of them; the other finds the figures up to date."""

from __future__ import annotations

import threading
from pathlib import Path

from mlpower.figures.service import FiguresService

from .helpers import wait_for

FIGURE = "fig9"


def test_two_replicas_asked_for_the_same_rebuild_at_once_render_it_once(data_dir: Path, tmp_path: Path) -> None:
    replicas = [FiguresService(data_dir, tmp_path / "figures", workers=1) for _ in range(2)]
    try:
        go = threading.Barrier(2)
        jobs = []

        def ask(replica: FiguresService) -> None:
            go.wait(timeout=30)
            jobs.append(replica.submit([FIGURE], mode="paper", trigger="command"))

        askers = [threading.Thread(target=ask, args=(replica,)) for replica in replicas]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(timeout=30)
        wait_for(lambda: len(jobs) == 2 and all(job.done.is_set() for job in jobs), 300, "both rebuilds")
        assert [job.state for job in jobs] == ["done", "done"], [job.error for job in jobs]
        assert sorted(name for job in jobs for name in job.rendered) == [FIGURE]  # rendered once
        assert sorted(name for job in jobs for name in job.unchanged) == [FIGURE]  # the other found it done
        assert (tmp_path / "figures" / "paper" / f"{FIGURE}.png").is_file()
    finally:
        for replica in replicas:
            replica.close()
