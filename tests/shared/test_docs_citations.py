"""Every citation of the project's docs resolves: ``docs/<file>.md`` names a file in ``docs/``, and
``<file>.md §N.M`` (or ``section N``, ranges like ``§3.2–3.10``, lists like ``§3.4, §3.8``) names
sections that exist as numbered headings of that file. Code, tests, READMEs, deploy files and
the docs themselves are scanned, so a renamed section or a removed document fails here instead
of leaving comments that point nowhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCANNED_SUFFIXES = {".py", ".md", ".json", ".yaml", ".yml", ".toml", ".sh", ".txt", ".cfg", ".ini"}
SCANNED_NAMES = {"Makefile", "Dockerfile", "CONTRIBUTING.md", "README.md"}
SKIPPED = {"shared/data", "shared/schemas"}

DOC_PATH = re.compile(r"\bdocs/([A-Za-z0-9_.-]+?)\.md\b")
# "<name>.md §3.2–3.10", "<name>.md section 2", "<name>.md §3-§4", "<name>.md §3.4, §3.8"
NUMBER = r"\d+(?:\.\d+)*"
SECTIONS = re.compile(
    rf"\b(?:docs/)?(?P<doc>[A-Za-z0-9_-]+)\.md`?\)?,?\s*(?:§\s*|sections?\s+)"
    rf"(?P<spec>{NUMBER}(?:\s*(?:[-–,]|and)\s*§?\s*{NUMBER})*)")
HEADING = re.compile(rf"^#{{2,4}}\s+(?P<number>{NUMBER})\.?\s", re.M)


def scanned_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                                timeout=60).stdout.decode().split("\0")
        files = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return sorted(p for p in files
                  if (p.suffix in SCANNED_SUFFIXES or p.name in SCANNED_NAMES) and p.exists()
                  and not any(p.relative_to(ROOT).as_posix().startswith(skip) for skip in SKIPPED))


def sections_of(doc: Path) -> set[str]:
    return {match.group("number") for match in HEADING.finditer(doc.read_text(encoding="utf-8"))}


def cited_numbers(spec: str) -> list[str]:
    return re.findall(NUMBER, spec)


def citations() -> list[tuple[str, int, str, list[str]]]:
    """(file, line, cited document, cited section numbers) for every citation in the repository."""
    found = []
    for path in scanned_files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            seen = set()
            for match in SECTIONS.finditer(line):
                found.append((path.relative_to(ROOT).as_posix(), number, match.group("doc"),
                              cited_numbers(match.group("spec"))))
                seen.add(match.start("doc"))
            for match in DOC_PATH.finditer(line):
                if match.start(1) not in seen:
                    found.append((path.relative_to(ROOT).as_posix(), number, match.group(1), []))
    return found


def test_the_docs_folder_has_its_index_and_every_document_is_in_it() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for doc in DOCS.glob("*.md"):
        if doc.name != "README.md":
            assert f"({doc.name})" in index, f"docs/README.md does not list {doc.name}"


def test_the_scan_finds_the_citations_it_is_meant_to_check() -> None:
    found = citations()
    # a cross-check of the scanner itself: known citations of each kind are seen
    assert any(doc == "wt310e" and numbers == ["2.2"] for _, _, doc, numbers in found)
    assert any(doc == "power-dev-protocol" and numbers == ["3.2", "3.10"] for _, _, doc, numbers in found)
    assert any(doc == "ecosystem" and not numbers for _, _, doc, numbers in found)
    assert ("services/analyzer_sim/README.md", ["3.2", "3.10"]) in [(file, numbers) for file, _, _, numbers in found]
    assert len(found) > 40


@pytest.mark.parametrize("doc", sorted({doc for _, _, doc, _ in citations()}))
def test_every_cited_document_exists(doc: str) -> None:
    places = [f"{file}:{line}" for file, line, cited, _ in citations() if cited == doc]
    assert (DOCS / f"{doc}.md").is_file(), f"docs/{doc}.md does not exist; cited at {places}"


def test_every_cited_section_exists() -> None:
    missing = []
    for file, line, doc, numbers in citations():
        path = DOCS / f"{doc}.md"
        if not path.is_file() or not numbers:
            continue  # a missing file is reported by the test above
        have = sections_of(path)
        missing += [f"{file}:{line}: docs/{doc}.md §{number}" for number in numbers if number not in have]
    assert not missing, "cited sections that do not exist:\n" + "\n".join(missing)


def test_section_numbers_are_unique_within_each_document() -> None:
    for doc in DOCS.glob("*.md"):
        numbers = [m.group("number") for m in HEADING.finditer(doc.read_text(encoding="utf-8"))]
        assert len(numbers) == len(set(numbers)), f"{doc.name} numbers a section twice"


def test_a_wrong_citation_would_be_caught(tmp_path: Path) -> None:
    line = "see power-dev-protocol.md §9.9 and docs/no-such-doc.md"
    matches = [(m.group("doc"), cited_numbers(m.group("spec"))) for m in SECTIONS.finditer(line)]
    assert matches == [("power-dev-protocol", ["9.9"])]
    assert "9.9" not in sections_of(DOCS / "power-dev-protocol.md")
    assert [m.group(1) for m in DOC_PATH.finditer(line)] == ["no-such-doc"]
    assert not (DOCS / "no-such-doc.md").exists()
