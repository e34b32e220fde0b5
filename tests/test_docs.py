"""Docs stay honest: every fixture/app/bench path and every relative link in README.md and docs/ exists
(template paths in the docs are often the user's own copies, so only their links are checked),
and every CLI command the README's table names is a real subcommand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alertbridge.cli import parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "README.md"]
PATH = re.compile(r"(?<![\w/.-])((?:tests/fixtures|app|bench|migrations)/[\w./-]+\.(?:json|j2|md|py|pem|vm|lua|txt))")
LINK = re.compile(r"\]\(((?!https?:|#|mailto:)[^)#\s]+)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_and_links_exist(doc: Path) -> None:
    text = doc.read_text("utf-8")
    generated = ("bench/results/",)  # git-ignored output of a bench run
    missing = [p for p in PATH.findall(text) if not (ROOT / p).exists() and not p.startswith(generated)]
    missing += [link for link in LINK.findall(text) if not (doc.parent / link).exists()]
    assert missing == [], f"{doc.relative_to(ROOT)} mentions paths that do not exist"


def test_readme_commands_exist() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    named = set(re.findall(r"`alertbridge ([a-z-]+)", text))
    commands = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert named and named <= commands, named - commands
