"""Every command's help page, walked from the click tree: it shows, its examples come after its options
(one layout for all), and every example names a command and options that exist (each is run with
``--help`` appended, which click answers once the line's options are read: their values, eager help
aside, are not converted)."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from pyagent.cli import cli
from tests.helpers.cli import invoke

CONTEXT = click.Context(cli)


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name in group.list_commands(CONTEXT):
        command = group.get_command(CONTEXT, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


COMMANDS = _commands(cli)


_COMMAND_LINE = re.compile(r"^(?:[A-Z_]+=\S+\s+)*pyagent(?:\s|$)")


def _examples(page: str) -> list[list[str]]:
    """The ``pyagent`` command lines under "Examples:" (continued lines joined; a comment, ``...``, the
    environment set before it, a pipe into it or out of it dropped; prose lines skipped)."""
    text = page[page.index("Examples") :].split("\n", 1)[1].replace("\\\n", " ")
    lines = []
    for line in text.splitlines():
        for part in line.split(" #")[0].split("|"):
            if _COMMAND_LINE.match(part.strip()):
                words = shlex.split(part)
                lines.append([word for word in words[words.index("pyagent") + 1 :] if word != "..."])
    return lines


def test_the_walk_finds_the_commands_users_know() -> None:
    assert {("check",), ("server", "token", "add"), ("policy", "bundle"), ("agent", "run")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "pyagent")
def test_help_shows_examples_after_options_and_each_example_parses(path: tuple[str, ...]) -> None:
    done = invoke([*path, "--help"])
    assert done.exit_code == 0, done.output
    page = done.output
    if "Examples" not in page:
        return
    assert page.index("Examples") > page.index("Options:"), "examples before the options"
    examples = _examples(page)
    assert examples
    for words in examples:
        parsed = invoke([*words, "--help"])
        assert parsed.exit_code == 0, f"pyagent {shlex.join(words)}: {parsed.output}"
