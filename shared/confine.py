"""Files only from where they belong: a name from a request, resolved inside one configured folder.

    path = confined_file(traces_dir, "h200_nvml_trace.csv")        # -> traces_dir/h200_nvml_trace.csv

The rules, in order: no NUL byte, no ``..`` component, an absolute path only when it already lies
inside the folder, no symlink anywhere below the folder (the folder itself may be one: the operator
chose it), and a regular file at the end. A refusal is a ``PathRefused`` naming the given name
(escaped and shortened, see ``logtext``) and the rule; it never carries a byte of any file, nor
the server's own path of the folder (``folder`` says which one in words).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath
from typing import IO, Any

from mlpower.errors import MlpowerError
from mlpower.logtext import client_text


class PathRefused(MlpowerError):
    """A requested path leaves its folder, or is not a plain file inside it."""


def confined_file(base: Path, name: str | PurePath, *, what: str = "file", folder: str = "its folder") -> Path:
    """``name`` resolved inside ``base``: the path of a regular file there, never a symlink's target."""
    text = str(name)
    shown = client_text(text)
    if not text or "\x00" in text:
        raise PathRefused(f"{what} {shown}: not a file name")
    root = Path(os.path.abspath(base))
    given = PurePath(text)
    if ".." in given.parts:
        raise PathRefused(f"{what} {shown}: '..' is not allowed; name a file inside {folder}")
    if given.is_absolute():
        if not given.is_relative_to(root):
            raise PathRefused(f"{what} {shown}: outside {folder}; name a file inside it")
        given = given.relative_to(root)
    if not given.parts:
        raise PathRefused(f"{what} {shown}: not a file name")
    current = root
    for index, part in enumerate(given.parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            raise PathRefused(f"{what} {shown}: no such file in {folder}") from None
        except OSError as exc:
            raise PathRefused(f"{what} {shown}: cannot be read ({exc.strerror})") from None
        if stat.S_ISLNK(mode):
            raise PathRefused(f"{what} {shown}: a symbolic link; links are not followed")
        last = index == len(given.parts) - 1
        if not last and not stat.S_ISDIR(mode):
            raise PathRefused(f"{what} {shown}: no such file in {folder}")
        if last and not stat.S_ISREG(mode):
            raise PathRefused(f"{what} {shown}: not a regular file")
    return current


def open_confined(base: Path, name: str | PurePath, *, what: str = "file", folder: str = "its folder",
                  **text: Any) -> IO[Any]:
    """``confined_file(base, name)`` opened for reading without following a link (``O_NOFOLLOW``:
    a link swapped in after the check is refused too). Keywords as for ``open`` (``encoding``,
    ``newline``) give a text file; none, a binary one."""
    path = confined_file(base, name, what=what, folder=folder)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PathRefused(f"{what} {client_text(str(name))}: cannot be opened ({exc.strerror})") from None
    return os.fdopen(fd, "r" if text else "rb", **text)
