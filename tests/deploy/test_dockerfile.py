"""deploy/Dockerfile: one image, non-root, the mlpower entry point; the build context is lean."""

from __future__ import annotations

import re

from .conftest import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_image_is_python_311_slim_and_installs_the_project() -> None:
    steps = instructions()
    assert all(arg.startswith("python:3.11-slim") for op, arg in steps if op == "FROM")
    assert any(op == "RUN" and "pip install ." in arg for op, arg in steps)


def test_final_stage_runs_as_a_non_root_user_with_mlpower_as_entry_point() -> None:
    steps = instructions()
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["mlpower"]') in final


def test_build_context_carries_what_the_image_copies_and_no_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "results", "deploy/.env"} <= ignored
    copied = {arg.split()[0] for op, arg in instructions() if op == "COPY" and not arg.startswith("--from")}
    for source in copied:
        assert source not in ignored and (ROOT / source).exists(), source
