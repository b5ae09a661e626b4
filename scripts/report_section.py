#!/usr/bin/env python3
"""Replace one generated section of BENCHMARKS.md, leaving the others alone.

Several tools report into BENCHMARKS.md (`make bench`, `make fuzz`, `make
soak`, `make size`); each owns the text between its own markers:

    <!-- begin:NAME -->
    ...
    <!-- end:NAME -->

Sections are kept in SECTION_ORDER, so the file reads the same whichever tool
ran last. Used as a module (``replace_section``) or from the shell:

    scripts/report_section.py NAME < section.md
"""

from __future__ import annotations

import re
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


def replace_section(name: str, body: str, report: Path = REPORT) -> None:
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"bad section name {name!r}")
    try:
        sections = read_sections(report.read_text())
    except FileNotFoundError:
        sections = {}
    sections[name] = body
    report.write_text(render(sections))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    replace_section(argv[1], sys.stdin.read())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
