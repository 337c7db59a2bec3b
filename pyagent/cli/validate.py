"""``pyagent validate``: check reports against the device-report schema."""

from __future__ import annotations

import click

from pyagent.cli.options import GivenPath
from pyagent.errors import InvalidInputError
from pyagent.report.load import load_report
from pyagent.termsafe import safe_line
from pyagent.userfile import stdin_bytes


@click.command(
    epilog="""\b
Examples:
  pyagent validate report.json
  pyagent validate reports/*.json
  cat report.json | pyagent validate -
""",
)
@click.argument("reports", nargs=-1, required=True, type=GivenPath(allow_dash=True), metavar="REPORT...")
@click.pass_context
def validate(ctx: click.Context, reports: tuple[str, ...]) -> None:
    """Check device reports against pyagent's device report schema.

    Every error names the file and the JSON path. Exit code 0 when all are valid, 2 otherwise.
    """
    failed = 0
    for report in reports:
        try:
            load_report(report, stdin=stdin_bytes() if report == "-" else None)
        except InvalidInputError as err:
            failed += 1
            lines = err.details() or [str(err)]
            for line in lines:
                click.echo(safe_line(line), err=True)  # (file names and report text: escapes shown)
            continue
        click.echo(safe_line(f"{report}: valid"), err=True)
    if failed:
        click.echo(f"pyagent: {failed} of {len(reports)} reports invalid", err=True)
    ctx.exit(2 if failed else 0)
