"""Where the lab is: ``lab run`` and ``lab down`` work from any directory.

The lab folder (``MLPOWER_LAB_DIR``, default ``.lab``) holds what ``lab up`` started and the
lab's secrets. A relative folder is looked for in the current directory and each one above it,
then in the checkout mlpower runs from, so a shell anywhere in the project (or outside it) finds
the lab; when none is found the error lists every place looked at.
"""

from __future__ import annotations

from pathlib import Path

from mlpower.lab.credentials import TOKEN_FILE, secrets_folder
from mlpower.lab.errors import LabError
from mlpower.lab.procs import STATE_FILE
from mlpower.settings import PROJECT_ROOT


def is_lab(folder: Path) -> bool:
    """A folder ``lab up`` made: it has the started processes' state or the lab's token."""
    return (folder / STATE_FILE).is_file() or (secrets_folder(folder) / TOKEN_FILE).is_file()


def candidates(workdir: Path, cwd: Path | None = None) -> list[Path]:
    """Where a lab folder named ``workdir`` may be, nearest first."""
    if workdir.is_absolute():
        return [workdir]
    here = (cwd or Path.cwd()).resolve()
    places = [folder / workdir for folder in (here, *here.parents)]
    home = PROJECT_ROOT / workdir
    return places if home in places else [*places, home]


def find_lab(workdir: Path, cwd: Path | None = None) -> Path:
    """The nearest lab folder; ``LabError`` naming every place looked at when there is none."""
    places = candidates(workdir, cwd)
    for folder in places:
        if is_lab(folder):
            return folder
    if len(places) == 1:
        looked = str(places[0])
    else:
        looked = f"{places[0]} and the same name in every folder above it"
        if places[-1].parent == PROJECT_ROOT and PROJECT_ROOT not in places[0].parents:
            looked += f", and {places[-1]}"
    raise LabError(f"no lab found: looked at {looked}; start one with 'mlpower lab up', "
                   f"or name its folder with --dir or MLPOWER_LAB_DIR")
