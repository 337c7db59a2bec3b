"""The ``pyagent`` command line: one click group, one error boundary."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from pyagent import __version__
from pyagent.cli.agent import agent
from pyagent.cli.check import check
from pyagent.cli.collect import collect
from pyagent.cli.fleet import fleet
from pyagent.cli.impact import impact
from pyagent.cli.log import log
from pyagent.cli.policy import policy
from pyagent.cli.validate import validate
from pyagent.errors import PyagentError


class PyagentGroup(click.Group):
    """A group whose ``invoke`` is the error boundary: every error becomes one line and an exit code.

    Living in the group (not only in ``main``) means click's test runner sees the same behaviour.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PyagentError as err:
            click.echo(f"pyagent: error: {err}", err=True)
            for line in err.details():
                click.echo(f"  {line}", err=True)
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("pyagent: interrupted", err=True)
            ctx.exit(3)
        except Exception as err:  # never a traceback, never "allow": report it and exit 3
            if os.environ.get("PYAGENT_DEBUG"):
                raise
            click.echo(
                f"pyagent: internal error: {type(err).__name__}: {err} (set PYAGENT_DEBUG=1 for details)",
                err=True,
            )
            ctx.exit(3)


@click.group(
    cls=PyagentGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  pyagent check examples/reports/eu-commission-personal-enrolled-tiktok.json --at 2023-03-16T09:30:00Z
  pyagent validate reports/*.json
  pyagent policy test
""",
)
@click.version_option(__version__, prog_name="pyagent")
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-v: info, -vv: debug).")
def cli(verbose: int) -> None:
    """App bans on managed devices, written as Rego policy and decided by OPA.

    Exit codes: 0 compliant, 1 non-compliant, 2 invalid input or usage, 3 no decision.
    """
    # Errors reach the user once, as the error line; logs add detail only when asked for (-v).
    logger = logging.getLogger("pyagent")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())  # no "last resort" echo of warnings on stderr
    if verbose and not any(type(h) is logging.StreamHandler for h in logger.handlers):
        logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("pyagent: %(levelname)s: %(message)s"))
        logger.addHandler(handler)


cli.add_command(check)
cli.add_command(collect)
cli.add_command(fleet)
cli.add_command(impact)
cli.add_command(validate)
cli.add_command(policy)
cli.add_command(agent)
cli.add_command(log)


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="pyagent")
