#!/usr/bin/env python3
"""Replace one generated section of BENCHMARKS.md, leaving the others alone.

Several tools report into BENCHMARKS.md (`make bench`, `make fuzz`, `make
soak`, `make size`); each owns the text between its own markers:

    <!-- begin:NAME -->
    ...
    <!-- end:NAME -->

Sections are kept in SECTION_ORDER, so the file reads the same whichever tool
ran last. Used as a module (``replace_section``) or from the shell:

    scripts/report_section.py [--require-clean] [--report FILE] NAME < section.md

Every section says what it measured: a line under its title names the
commit (``Measured on commit `<hash>`.``). A section made from a tree that
differs from that commit (tracked changes, or new files, other than
BENCHMARKS.md itself) gets "(uncommitted)" in its title and the changed
paths listed; with ``--require-clean`` (or EDGE_AUTH_REPORT_REQUIRE_CLEAN=1)
it is refused instead and BENCHMARKS.md is left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION_ORDER = ["throughput", "size", "fuzz", "soak"]
HEADER = (
    "# Benchmarks\n\n"
    "Generated: every section below is written by the tool named in it "
    "(`make bench`, `make size`, `make fuzz`, `make soak`), which rewrites only its own section. "
    "Do not edit by hand.\n"
)
_SECTION = re.compile(r"<!-- begin:(?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)<!-- end:(?P=name) -->\n?", re.S)


# Untracked paths that are local set-up, not part of what is measured.
_LOCAL_SETUP = ("node_modules", ".venv")
_SHOWN_PATHS = 10


class DirtyTree(RuntimeError):
    """The working tree differs from HEAD and a clean one was required."""


def provenance(repo: Path) -> tuple[str, list[str]]:
    """(HEAD's full hash, or "unknown" outside git; the paths that differ
    from it: tracked changes and untracked files, except BENCHMARKS.md and
    local set-up links)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30,
                              check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain=v1", "-z", "--untracked-files=all")
    except (OSError, subprocess.SubprocessError):
        return "unknown", []
    dirty = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            next(entries, None)  # the rename's source path
        if path == REPORT.name:
            continue
        if code == "??" and any(part in _LOCAL_SETUP for part in Path(path).parts):
            continue
        dirty.append(path)
    return commit, sorted(dirty)


def stamp(body: str, commit: str, dirty: list[str]) -> str:
    """``body`` with the commit named under its first heading, and the
    heading marked "(uncommitted)" when ``dirty`` is not empty."""
    lines = body.rstrip("\n").split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("#")), None)
    if at is None:
        lines.insert(0, "## (untitled section)")
        at = 0
    note = f"Measured on commit `{commit}`"
    if commit == "unknown":
        note = "Measured outside a git checkout: the commit is unknown."
    elif dirty:
        lines[at] += " (uncommitted)"
        shown = ", ".join(f"`{p}`" for p in dirty[:_SHOWN_PATHS])
        more = f" and {len(dirty) - _SHOWN_PATHS} more" if len(dirty) > _SHOWN_PATHS else ""
        note += f" **plus uncommitted changes** to {shown}{more}; re-run on a clean tree."
    else:
        note += " (clean tree)."
    lines[at + 1:at + 1] = ["", note]
    return "\n".join(lines) + "\n"


def require_clean_from_env() -> bool:
    return os.environ.get("EDGE_AUTH_REPORT_REQUIRE_CLEAN", "") == "1"


def read_sections(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in _SECTION.finditer(text)}


def render(sections: dict[str, str]) -> str:
    known = [n for n in SECTION_ORDER if n in sections]
    extra = sorted(n for n in sections if n not in SECTION_ORDER)
    parts = [HEADER]
    for name in known + extra:
        body = sections[name].rstrip("\n") + "\n"
        parts.append(f"<!-- begin:{name} -->\n{body}<!-- end:{name} -->\n")
    return "\n".join(parts)


def replace_section(name: str, body: str, report: Path = REPORT, *, require_clean: bool | None = None) -> None:
    """Write ``body`` (stamped, see :func:`stamp`) as section ``name`` of
    ``report``; :class:`DirtyTree` instead when the tree is not clean and
    ``require_clean`` (default: EDGE_AUTH_REPORT_REQUIRE_CLEAN=1)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"bad section name {name!r}")
    commit, dirty = provenance(report.resolve().parent)
    if dirty and (require_clean_from_env() if require_clean is None else require_clean):
        raise DirtyTree(f"not writing section {name!r}: the tree differs from {commit}: {', '.join(dirty)}")
    body = stamp(body, commit, dirty)
    try:
        sections = read_sections(report.read_text())
    except FileNotFoundError:
        sections = {}
    sections[name] = body
    report.write_text(render(sections))


def main(argv: list[str]) -> int:
    args = argv[1:]
    require_clean = "--require-clean" in args
    args = [a for a in args if a != "--require-clean"]
    report = REPORT
    if len(args) == 3 and args[0] == "--report":
        report, args = Path(args[1]), args[2:]
    if len(args) != 1 or args[0].startswith("-"):
        # `--help` is not a section name (it once became one).
        print(__doc__, file=sys.stderr)
        return 2
    try:
        replace_section(args[0], sys.stdin.read(), report, require_clean=require_clean or None)
    except DirtyTree as e:
        print(f"report_section: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
