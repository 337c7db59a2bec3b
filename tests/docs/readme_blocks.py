"""The shell blocks of a Markdown document, as one bash script that checks every command's exit code.

The conventions (the test's docstring has the why):

- A fenced block whose language is ``sh``, ``bash`` or ``console`` runs; others (yaml, toml, json, a
  bare fence for output or diagrams) are text. In a ``console`` block only ``$ `` lines are commands.
- A command passes when it exits 0, or N when a comment on it says ``# exit N`` (``# exit 1: ...``).
  A command is a line, with lines ending in ``\\``, ``|``, ``&&`` or ``||`` and a heredoc's body.
- ``<!-- readme-test: MARK ... -->`` on the line before a fence changes how that block runs:
  ``skip REASON`` (not run; the reason is required), ``dry-run REASON`` (``make`` runs as ``make -n``),
  ``env NAME`` (the test exports NAME before the block, e.g. a database it started).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGES = frozenset({"sh", "bash", "console"})
MARKS = frozenset({"skip", "dry-run", "env"})
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_MARK = re.compile(r"^<!-- readme-test: ([\w-]+)(?: (.+?))? -->$")
_EXIT = re.compile(r"#\s*exit (\d+)\b")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_CONTINUED = ("\\", "|", "&&", "||")


class BlockError(ValueError):
    """A document's blocks break the conventions (an unknown mark, a skip without a reason...)."""


@dataclass(frozen=True)
class Command:
    """One command of a block: its text, the line it starts on and the exit code it must give."""

    line: int
    text: str
    expect: int


@dataclass(frozen=True)
class Block:
    """A fenced block: where it starts (the fence's line), its language, lines and mark."""

    doc: str
    line: int
    language: str
    lines: tuple[str, ...]
    mark: str | None = None
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.mark != "skip"

    def commands(self) -> list[Command]:
        """The block's commands in order; comment and blank lines are not commands."""
        lines = list(self.lines)
        if self.language == "console":
            lines = [line[2:] if line.startswith("$ ") else "" for line in lines]
        found: list[Command] = []
        i = 0
        while i < len(lines):
            start, text = i, lines[i]
            i += 1
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            heredoc = _HEREDOC.search(text)
            while text.rstrip().endswith(_CONTINUED) and i < len(lines):
                text, i = f"{text}\n{lines[i]}", i + 1
            head = text
            if heredoc:
                while i < len(lines) and lines[i].strip() != heredoc.group(2):
                    text, i = f"{text}\n{lines[i]}", i + 1
                if i == len(lines):
                    raise BlockError(
                        f"{self.doc}:{self.line + 1 + start}: heredoc {heredoc.group(2)} never ends"
                    )
                text, i = f"{text}\n{lines[i]}", i + 1
            expect = _EXIT.search(head)
            found.append(Command(self.line + 1 + start, text, int(expect.group(1)) if expect else 0))
        return found


def read_blocks(path: Path, doc: str) -> list[Block]:
    """Every fenced block of the Markdown file ``path`` (named ``doc`` in messages), with its mark."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise BlockError(f"{doc}:{i + 1}: a block that never ends")
        mark = _MARK.match(lines[i - 1]) if i else None
        if mark and mark.group(1) not in MARKS:
            raise BlockError(f"{doc}:{i}: unknown readme-test mark {mark.group(1)!r}")
        if mark and mark.group(1) != "env" and not mark.group(2):
            raise BlockError(f"{doc}:{i}: readme-test {mark.group(1)} needs a reason")
        kind, argument = (mark.group(1), mark.group(2) or "") if mark else (None, "")
        blocks.append(Block(doc, i + 1, fence.group(1), tuple(lines[i + 1 : end]), kind, argument))
        i = end + 1
    return blocks


_PRELUDE = """set -o pipefail
__readme_expect() {
  if [ "$1" != "$2" ]; then printf 'readme-test: %s: exit %s, expected %s\\n' "$3" "$1" "$2" >&2; exit 97; fi
}
"""


def script(blocks: list[Block], env: Mapping[str, str]) -> str:
    """One bash script: the blocks that run, in order, each command followed by its exit-code check."""
    parts = [_PRELUDE]
    for block in blocks:
        if not block.runs:
            continue
        parts.append(f"printf '\\n### %s\\n' {shlex.quote(block.where)} >&2")
        if block.mark == "env":
            for name in block.argument.split():
                if name not in env:
                    raise BlockError(f"{block.where}: the test provides no {name}")
                parts.append(f"export {name}={shlex.quote(env[name])}")
        if block.mark == "dry-run":
            parts.append('make() { command make -n "$@" >/dev/null; }')
        for command in block.commands():
            parts.append(command.text)
            parts.append(f"__readme_expect $? {command.expect} {shlex.quote(f'{block.doc}:{command.line}')}")
        if block.mark == "dry-run":
            parts.append("unset -f make")
    parts.append("printf '\\n### all blocks ran\\n' >&2")
    return "\n".join(parts) + "\n"
