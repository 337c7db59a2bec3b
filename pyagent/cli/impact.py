"""``pyagent impact``: preview what a policy change would do to the fleet, before rollout."""

from __future__ import annotations

import json

import click

from pyagent.cli.fleet import check_org_known, open_output
from pyagent.cli.options import (
    GivenPath,
    ManyDevices,
    at_option,
    org_option,
    output_option,
    text_or_json_option,
)
from pyagent.cli.render import check_output_apart, results_or_nothing, text_report
from pyagent.engines.base import EngineSettings
from pyagent.fleet import runner
from pyagent.fleet.impact import Impact, compile_version
from pyagent.fleet.impact_text import impact_text
from pyagent.fleet.progress import with_progress
from pyagent.fleet.sources import check_readable, iter_items
from pyagent.termsafe import safe_line
from pyagent.timeutil import check_rfc3339, now_rfc3339


@click.command(
    epilog="""\b
Examples:
  pyagent impact --baseline policies/ --candidate proposed/ devices.jsonl --at 2023-03-20T00:00:00Z
  pyagent impact --baseline policies/ --candidate proposed/ reports/ --format json -o impact.json
"""
)
@click.option("--baseline", required=True, type=GivenPath(file_okay=False), help="The policy in force.")
@click.option("--candidate", required=True, type=GivenPath(file_okay=False), help="The proposed policy.")
@click.argument(
    "inventories", nargs=-1, required=True, type=GivenPath(allow_dash=True), metavar="INVENTORY..."
)
@org_option
@at_option
@text_or_json_option
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores)."
)
@output_option
@click.pass_context
def impact(
    ctx: click.Context,
    baseline: str,
    candidate: str,
    inventories: tuple[str, ...],
    org: str | None,
    at: str | None,
    fmt: str,
    jobs: int | None,
    output: str | None,
) -> None:
    """Decide every device with both policy versions and list the devices whose decision changes.

    A device the baseline allows and the candidate cannot decide (a broken rule, a dropped
    organisation) flips to deny, and counts under candidate_errors too; one neither version decides
    is not compared. Exit codes: 0 no decision changes and every device compared; 1 some decision
    changes, or some report is invalid or undecided (counted as `fleet` does); 2 usage, a missing
    input or a policy that does not compile; 3 neither version decided any device.
    """
    check_output_apart(
        output, list(inventories), options=[("--baseline", baseline), ("--candidate", candidate)]
    )
    with results_or_nothing(output):
        # Every input is checked before anything is compiled or decided: a missing path is exit 2 at once.
        check_readable(baseline, what="policy directory (--baseline)", directory=True)
        check_readable(candidate, what="policy directory (--candidate)", directory=True)
        _run(ctx, ManyDevices(inventories, org, at, fmt, jobs, output), (baseline, candidate))


def _run(ctx: click.Context, asked: ManyDevices, versions: tuple[str, str]) -> None:
    when = check_rfc3339(asked.at, option="--at") if asked.at is not None else now_rfc3339()
    to_file = bool(asked.output and asked.output != "-")  # text goes there too, as `check -o` and `fleet -o`
    items = with_progress(iter_items(asked.inventories), label="impact")
    result = Impact()
    bundles = [compile_version(versions[0], "baseline"), compile_version(versions[1], "candidate")]
    settings = [EngineSettings(engine="embedded", bundle=str(b)) for b in bundles]
    if asked.org is not None:  # known to either version: what changes for it is the question
        check_org_known(settings, asked.org, at=when)
    for before, after in runner.run(items, settings, at=when, org=asked.org, jobs=asked.jobs):
        result.add(before, after)
    code = result.summary.exit_code()
    lines = impact_text(result)
    if asked.fmt == "json":
        with open_output(asked.output) as out:
            out.write(json.dumps(result.as_dict(when), indent=2, ensure_ascii=False) + "\n")
    elif to_file:
        with open_output(asked.output) as out:
            out.write("".join(safe_line(line) + "\n" for line in lines))
    if asked.fmt == "text" and not to_file:
        text_report("".join(safe_line(line) + "\n" for line in lines))
    else:  # the results went elsewhere: their summary line on standard error as well
        click.echo(safe_line(lines[0]), err=True)
    repeated = result.ids.text()  # (as fleet says it: each report is compared and counted)
    if repeated is not None:
        click.echo(safe_line(f"pyagent: {repeated}"), err=True)
    ctx.exit(code)
