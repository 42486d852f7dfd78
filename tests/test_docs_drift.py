"""The partner and operator docs stay true to the code in what a machine can check: every relative link and
anchor between README.md and docs/*.md resolves, every ``apertur …`` command they show names a real command
with options it takes (a renamed flag in the code, or a typo in the docs, fails here), and every error code in
the error tables of docs/api.md and docs/oauth.md is one the code can answer."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from apertur.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link texts and markup dropped, lower-cased, punctuation removed
    (``—`` included, so "Step 4 — exchange" is ``step-4--exchange``), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose = FENCE.sub("", path.read_text())
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*$", prose, re.MULTILINE)}


def relative_links() -> list[tuple[Path, str]]:
    found = []
    for doc in DOCS:
        for link in LINK.findall(doc.read_text()):
            if not re.match(r"[a-z][a-z0-9+.-]*:", link):
                found.append((doc, link))
    return found


@pytest.mark.parametrize(("doc", "link"), relative_links(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_relative_links_and_anchors_resolve(doc: Path, link: str) -> None:
    path, _, fragment = link.partition("#")
    target = (doc.parent / path).resolve() if path else doc
    assert target.exists(), f"{doc.name}: {link} points at a file that does not exist"
    if fragment and target.suffix == ".md":
        assert fragment in anchors(target), f"{doc.name}: {link}: {target.name} has no heading with that anchor"


def command_lines() -> list[tuple[str, str]]:
    """Each line of a fenced block, or inline code span, that runs ``apertur <subcommand> …``."""
    lines = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = [block for block in FENCE.findall(text)]
        spans = re.findall(r"`(apertur [^`]+)`", FENCE.sub("", text))
        candidates = [line for block in blocks for line in block.splitlines()] + spans
        for line in candidates:
            line = re.sub(r"^\s*\$\s*", "", line).split("  #", 1)[0].split(" # ", 1)[0].strip()
            if re.match(r"apertur [a-z]", line):
                lines.append((doc.name, line))
    return lines


ROOT_COMMAND = typer.main.get_command(app)


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the words name, and the words after it (typer carries its own click: duck-typed)."""
    command: Any = ROOT_COMMAND
    while hasattr(command, "commands") and words and words[0] in command.commands:
        command = command.commands[words.pop(0)]
    return command, words


@pytest.mark.parametrize(("doc", "line"), command_lines(), ids=lambda v: v)
def test_every_apertur_command_in_the_docs_exists_with_its_options(doc: str, line: str) -> None:
    command, rest = resolve(line.split()[1:])
    assert not hasattr(command, "commands"), f"{doc}: `{line}` names no command"
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(rest)))
    assert named <= taken, f"{doc}: `{line}`: {sorted(named - taken)} not options of `{command.name}`"


def test_the_docs_show_apertur_commands() -> None:
    assert len(command_lines()) > 20
    assert len(relative_links()) > 20
    assert len(documented_error_codes()) > 15


def documented_error_codes() -> list[tuple[str, str]]:
    """The codes in the error tables of the API and OAuth docs (the rows with an HTTP status cell)."""
    codes = []
    for name in ("api.md", "oauth.md"):
        for row in (ROOT / "docs" / name).read_text().splitlines():
            cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
            if row.startswith("|") and any(re.fullmatch(r"[45]\d\d", cell) for cell in cells):
                # The code cell is the first that starts with one; later cells explain (parameter names, headers).
                cell = next(cell for cell in cells if cell.startswith("`"))
                codes += [(name, code) for code in re.findall(r"`([a-z]+(?:_[a-z]+)+)`", cell)]
    return sorted(set(codes))


@functools.cache
def code_literals() -> str:
    sources = (path for path in (ROOT / "apertur").rglob("*.py") if "tests" not in path.parts)
    return "\n".join(path.read_text() for path in sources)


@pytest.mark.parametrize(("doc", "code"), documented_error_codes(), ids=lambda v: v)
def test_every_documented_error_code_is_one_the_code_can_answer(doc: str, code: str) -> None:
    assert re.search(rf"[\"']{code}[\"']", code_literals()), f"{doc} documents `{code}`, which no code answers"


def test_every_setting_read_from_the_environment_is_in_the_readme() -> None:
    """An operator configures Apertur from the README's Configuration table alone."""
    settings_py = (ROOT / "apertur" / "config" / "settings.py").read_text()
    read = set(re.findall(r"(?:environ\.get|environ\[|_env_bool)\(?\s*[\"']([A-Z][A-Z0-9_]+)[\"']", settings_py))
    readme = (ROOT / "README.md").read_text()
    # The S3 variables are listed once as UPLOADS_S3_BUCKET (+ ..._ENDPOINT_URL, _REGION, ...).
    missing = {name for name in read if name not in readme and f"`_{name.removeprefix('UPLOADS_S3_')}`" not in readme}
    assert len(read) > 30
    assert not missing, f"settings.py reads {sorted(missing)} from the environment; README.md does not name them"
