"""``pyagent`` run in-process through click's test runner: what the CLI tests share."""

from __future__ import annotations

from click.testing import CliRunner, Result

from pyagent.cli import cli


def invoke(args: list[str], stdin: str | None = None, *, env: dict[str, str] | None = None) -> Result:
    """``pyagent ARGS``, with ``stdin`` as standard input and ``env`` over the environment."""
    return CliRunner().invoke(cli, args, input=stdin, env=env)
