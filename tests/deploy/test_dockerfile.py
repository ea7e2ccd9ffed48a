"""deploy/Dockerfile and its lock: one image, non-root with the device groups, the mlpower entry
point, dependencies locked with hashes in a layer of their own, a lean build context.

These read the files; ``test_compose_containers.py`` builds the image and runs it.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
LOCK = DEPLOY / "requirements.txt"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (``FROM`` first)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for op, arg in instructions():
        if op == "FROM":
            current = found.setdefault(arg.split()[-1] if " AS " in arg.upper() else f"stage{len(found)}", [])
        if found:
            current.append((op, arg))
    return found


def image_steps(target: str) -> list[tuple[str, str]]:
    """What an image's own stages run: the target and the stages it derives from (FROM <stage>)."""
    chain, all_stages = [], stages()
    while target in all_stages:
        chain.insert(0, target)
        target = all_stages[target][0][1].split()[0]
    return [step for name in chain for step in all_stages[name]]


def locked() -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes) from deploy/requirements.txt."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", line)
        if match:
            hashes = re.findall(r"sha256:\w+", match.group(3))
            pins[canonicalize_name(match.group(1))] = (Version(match.group(2)), hashes)
    return pins


def test_every_image_starts_from_the_one_python_311_slim_base_argument() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "PYTHON_BASE=python:3.11-slim")
    assert list(stages()) == ["build", "build-slim", "runtime", "slim", "full"]  # full: the default target
    bases = {name: stage[0][1].split()[0] for name, stage in stages().items()}
    assert bases == {"build": "${PYTHON_BASE}", "build-slim": "build", "runtime": "${PYTHON_BASE}",
                     "slim": "runtime", "full": "runtime"}


@pytest.mark.parametrize("target", ["full", "slim"])
def test_images_run_as_a_numeric_non_root_uid_that_keeps_its_device_groups(target: str) -> None:
    steps = image_steps(target)
    users = [arg for op, arg in steps if op == "USER"]
    # a uid without ":gid": the runtime takes the supplementary groups (plugdev, dialout) from
    # /etc/group; "10001:10001" would drop them. Numeric so Kubernetes can verify runAsNonRoot.
    assert users == ["10001"]
    useradd = next(arg for op, arg in steps if op == "RUN" and "useradd" in arg)
    assert re.search(r"--uid 10001 .*--groups plugdev,dialout", useradd)
    assert ("ENTRYPOINT", '["mlpower"]') in steps
    assert any(op == "RUN" and "libusb-1.0-0" in arg for op, arg in steps)  # PyUSB's backend


def test_no_volume_line() -> None:
    # VOLUME makes an anonymous volume in every container of every service; compose and
    # Kubernetes mount what each service needs.
    assert not [arg for op, arg in instructions() if op == "VOLUME"]


def test_the_slim_image_drops_exactly_the_analysis_stack() -> None:
    """The packages the slim target uninstalls: the analysis roots and whatever only they pull in (per the lock)."""
    arg = next(arg for op, arg in stages()["build-slim"] if op == "ARG" and arg.startswith("ANALYSIS_PACKAGES="))
    dropped = {canonicalize_name(name) for name in arg.split("=", 1)[1].strip('"').split()}
    roots = {"pyarrow", "polars", "matplotlib"}
    needed_by: dict[str, set[str]] = {}
    text = LOCK.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=[a-z0-9])", text):
        name = re.match(r"([A-Za-z0-9_.\-]+)==", block)
        if name:
            via = re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9_.\-]+)", block)
            needed_by[canonicalize_name(name.group(1))] = {canonicalize_name(v) for v in via if v != "via"}
    only_for_analysis = set(roots)
    changed = True
    while changed:
        changed = False
        for name, users in needed_by.items():
            if name not in only_for_analysis and users and users <= only_for_analysis:
                only_for_analysis.add(name)
                changed = True
    assert dropped == only_for_analysis
    # the services on the slim image (and the shared package they use) never import them
    for folder in ("services/analyzer_sim", "services/sut_agent", "shared"):
        for module in (ROOT / folder).glob("*.py"):
            imported = set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", module.read_text(), re.M))
            assert not imported & {"pyarrow", "polars", "matplotlib", "PIL"}, module


def test_locked_dependencies_install_before_the_source_is_copied() -> None:
    build = stages()["build"]
    copies = [(i, arg.split()[0]) for i, (op, arg) in enumerate(build) if op == "COPY"]
    install_deps = next(i for i, (op, arg) in enumerate(build)
                        if op == "RUN" and "--require-hashes" in arg and "-r /tmp/requirements.txt" in arg)
    install_project = next(i for i, (op, arg) in enumerate(build)
                           if op == "RUN" and "--no-deps --no-build-isolation ." in arg)
    assert copies[0] == (copies[0][0], "deploy/requirements.txt") and copies[0][0] < install_deps
    # nothing but the lock is copied before the dependency layer, so a code edit reuses it
    assert all(i > install_deps for i, source in copies[1:])
    assert install_deps < install_project
    assert "pip check" in build[install_project][1]


def test_the_lock_pins_every_dependency_of_pyproject_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = locked()
    wanted = [Requirement(text) for text in project["project"]["dependencies"]]
    wanted += [Requirement(text) for text in project["build-system"]["requires"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in deploy/requirements.txt: run scripts/lock_requirements.sh"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} vs {requirement}"
        assert hashes, f"{name} has no hash"
    assert canonicalize_name("pyusb") in pins  # pyvisa-py's USB resources need it
    lines = [line for line in LOCK.read_text(encoding="utf-8").splitlines() if "==" in line]
    assert len(lines) == len(pins), "every pinned line carries its hashes"
    assert "scripts/lock_requirements.sh" in LOCK.read_text(encoding="utf-8")  # how it was made


def test_build_context_carries_what_the_image_copies_and_no_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "results", "deploy/.env"} <= ignored
    copied = {arg.split()[0] for op, arg in instructions() if op == "COPY" and not arg.startswith("--from")}
    for source in copied:
        assert source not in ignored and (ROOT / source).exists(), source
