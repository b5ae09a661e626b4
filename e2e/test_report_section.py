"""scripts/report_section.py, which every BENCHMARKS.md section goes through,
names the commit a section measured, marks a section made from an
uncommitted tree in its title, and can refuse one. Against a real git
repository made for the test (no Envoy needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import report_section  # noqa: E402

BODY = "## Throughput\n\nWritten by `make bench`.\n\n| a | b |\n"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text("fn a() {}\n")
    git(tmp_path, "add", "src/lib.rs")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def section(repo: Path, name: str = "throughput") -> str:
    return report_section.read_sections((repo / "BENCHMARKS.md").read_text())[name]


def test_clean_tree_names_the_commit(repo):
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md")
    text = section(repo)
    assert text.startswith(f"## Throughput\n\nMeasured on commit `{head(repo)}` (clean tree).\n\nWritten by"), text
    assert "uncommitted" not in text
    # The report itself, committed or not, does not make the tree dirty.
    git(repo, "add", "BENCHMARKS.md")
    git(repo, "commit", "-q", "-m", "report")
    (repo / "BENCHMARKS.md").write_text((repo / "BENCHMARKS.md").read_text() + "\n")
    (repo / "node_modules").symlink_to(repo / "src")  # local set-up link, untracked
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md")
    assert "(clean tree)" in section(repo) and head(repo) in section(repo)


def test_uncommitted_changes_mark_the_title_and_list_the_paths(repo):
    (repo / "src" / "lib.rs").write_text("fn b() {}\n")
    (repo / "src" / "new.rs").write_text("fn c() {}\n")
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md")
    lines = section(repo).split("\n")
    assert lines[0] == "## Throughput (uncommitted)", lines
    assert lines[2].startswith(f"Measured on commit `{head(repo)}` **plus uncommitted changes** to "), lines
    assert "`src/lib.rs`" in lines[2] and "`src/new.rs`" in lines[2], lines
    # Staged but not committed is still uncommitted.
    git(repo, "add", "-A")
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md")
    assert section(repo).startswith("## Throughput (uncommitted)")
    # Committed: clean again, and the new commit is named.
    git(repo, "commit", "-q", "-m", "two")
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md")
    assert section(repo).startswith(f"## Throughput\n\nMeasured on commit `{head(repo)}` (clean tree).")


def test_require_clean_refuses_and_leaves_the_report_alone(repo):
    report_section.replace_section("size", "## Size\n\n1 byte\n", repo / "BENCHMARKS.md")
    before = (repo / "BENCHMARKS.md").read_text()
    (repo / "src" / "lib.rs").write_text("fn b() {}\n")
    with pytest.raises(report_section.DirtyTree, match="src/lib.rs"):
        report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md", require_clean=True)
    assert (repo / "BENCHMARKS.md").read_text() == before
    # The same from the shell: exit 1, nothing written; usage errors exit 2.
    script = [sys.executable, str(SCRIPTS / "report_section.py")]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    report = str(repo / "BENCHMARKS.md")
    shell = subprocess.run([*script, "--require-clean", "--report", report, "throughput"], input=BODY,
                           text=True, capture_output=True, env=env, cwd=repo)
    assert shell.returncode == 1 and "src/lib.rs" in shell.stderr, shell
    assert (repo / "BENCHMARKS.md").read_text() == before
    assert subprocess.run([*script, "--report", report], capture_output=True, env=env).returncode == 2
    # Control: without the requirement the section is written, marked.
    report_section.replace_section("throughput", BODY, repo / "BENCHMARKS.md", require_clean=False)
    assert section(repo).startswith("## Throughput (uncommitted)")
    assert section(repo, "size").startswith("## Size\n\nMeasured on commit")
