"""``pyagent fleet``: many devices decided in one streaming, parallel run."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

import click

from pyagent.cli.options import (
    GivenPath,
    ManyDevices,
    at_option,
    check_bundle_given,
    check_flags_used,
    engine_inputs,
    engine_options,
    org_option,
    output_option,
)
from pyagent.cli.render import check_output_apart, results_or_nothing, text_report, writing
from pyagent.engines.base import EngineName, EngineSettings
from pyagent.engines.embedded import default_bundle_path
from pyagent.engines.select import resolve
from pyagent.errors import InvalidInputError
from pyagent.fleet import runner
from pyagent.fleet.progress import with_progress
from pyagent.fleet.report import MAX_LISTED, problem_line, problems_text, text_summary, write_json
from pyagent.fleet.sources import iter_items
from pyagent.fleet.summary import FleetSummary
from pyagent.termsafe import safe_lines
from pyagent.timeutil import check_rfc3339, now_rfc3339
from pyagent.userfile import Replacement


def pinned_settings(settings: EngineSettings) -> EngineSettings:
    """Settings with the bundle resolved now, so worker processes use exactly the same policy."""
    if resolve(settings) is EngineName.EMBEDDED and not settings.bundle:
        return dataclasses.replace(settings, bundle=str(default_bundle_path()))
    return settings


class _Checked:
    """A text stream whose write and flush failures (a full disk) are the user's error naming where
    (exit 2), not an internal one; the renderers write to it as to any stream."""

    def __init__(self, stream: IO[str], where: str) -> None:
        self.stream, self.where = stream, where

    def write(self, text: str) -> int:
        with writing(self.where):
            return self.stream.write(text)

    def flush(self) -> None:
        with writing(self.where):
            self.stream.flush()


@contextlib.contextmanager
def open_output(output: str | None) -> Iterator[IO[str]]:
    """Where the results go: ``-o FILE``, replaced whole once they are all written (a run that fails
    leaves no part of its results: the command's :func:`~pyagent.cli.render.results_or_nothing` says
    what becomes of an earlier run's file), else standard output."""
    if output and output != "-":
        with writing(f"-o {output}"):
            replacement = Replacement(output)
        text: io.TextIOWrapper | None = None
        try:
            text = io.TextIOWrapper(replacement.stream, encoding="utf-8", newline="")
            checked = _Checked(text, f"-o {output}")
            yield checked  # type: ignore[misc]
            checked.flush()
            text.detach()  # (the file is closed, synced and renamed by the replacement)
        except BaseException:
            if text is not None:
                with contextlib.suppress(ValueError, OSError):
                    text.detach()
            replacement.abort()  # the temporary file goes: nothing of this run stays
            raise
        with writing(f"-o {output}"):
            replacement.commit()
    else:
        if sys.stdout is None:  # (closed: ``>&-``) the results would go nowhere, and the run succeed
            raise InvalidInputError("standard output: cannot write: it is closed")
        checked = _Checked(sys.stdout, "standard output")
        yield checked  # type: ignore[misc]
        checked.flush()


def check_org_known(policies: Sequence[EngineSettings], org: str, *, at: str) -> None:
    """Refuse (exit 2) an ``--org`` that none of the ``policies`` defines, before any device is decided.

    The organisations are those of the policy that decides (the bundle with its ``--data`` overlays,
    or the OPA server's own data), so each engine answers: one decision about an empty report of that
    organisation, whose only possible input error is the organisation."""
    from pyagent.decide import raise_for_policy_errors

    unknown = [_unknown_org(settings, org, at=at) for settings in policies]
    if all(unknown):
        raise_for_policy_errors({"errors": unknown[0]}, source="--org")


def _unknown_org(settings: EngineSettings, org: str, *, at: str) -> list[dict[str, Any]]:
    """The policy's ``unknown_organization`` errors for ``org`` (none when it knows it)."""
    from pyagent.decide import decide
    from pyagent.engines.select import build_engine

    probe = {
        "schema_version": 1,
        "collected_at": at,
        "device": {
            "id": "pyagent-org-check",
            "platform": "linux",
            "ownership": "corporate",
            "organization": org,
            "mdm": {"enrolled": True},
        },
        "apps": [],
    }
    with build_engine(settings) as engine:
        decision = decide(engine, probe, at=at)
    return [e for e in decision["errors"] if e.get("code") == "unknown_organization"]


def exit_code(summary: FleetSummary) -> int:
    if summary.devices == 0:
        raise InvalidInputError("no reports found in the inventories given")
    if summary.undecided and summary.compliant + summary.non_compliant == 0:
        return 3  # not one decision could be made (invalid reports aside)
    if summary.non_compliant or summary.invalid or summary.undecided:
        return 1
    return 0


class DefaultToRunGroup(click.Group):
    """``pyagent fleet INVENTORY...`` is ``pyagent fleet run INVENTORY...``; other subcommands by name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultToRunGroup,
    epilog="""\b
Examples:
  pyagent fleet devices.jsonl --at 2023-03-16T09:30:00Z
  pyagent fleet reports/ --format json -o fleet.json
  pyagent fleet devices.jsonl --format html -o fleet.html
  pyagent fleet generate --devices 10000 --seed 7 -o devices.jsonl
  cat devices.jsonl | pyagent fleet - --org eu-council
""",
)
def fleet() -> None:
    """Decide many devices: `pyagent fleet INVENTORY...` (same as `fleet run`), or `fleet generate`.

    An inventory named like a subcommand (a folder called run or generate) is written ./run."""


@fleet.command(
    name="run",
    epilog="""\b
Examples:
  pyagent fleet run devices.jsonl reports/ --at 2023-03-16T09:30:00Z --format json
""",
)
@click.argument(
    "inventories", nargs=-1, required=True, type=GivenPath(allow_dash=True), metavar="INVENTORY..."
)
@org_option
@at_option
@engine_options
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores)."
)
@output_option
@click.pass_context
def run_fleet(
    ctx: click.Context,
    /,
    inventories: tuple[str, ...],
    org: str | None,
    at: str | None,
    fmt: str,
    jobs: int | None,
    output: str | None,
    **engine_flags: Any,
) -> None:
    """Decide every device in JSONL files, report files, directories of reports, named pipes, or - (stdin).

    Exit codes: 0 all compliant, 1 any non-compliant or invalid, 2 usage, 3 no decision at all.
    """
    check_output_apart(output, list(inventories), options=engine_inputs(engine_flags))
    with results_or_nothing(output):
        _run(ctx, ManyDevices(inventories, org, at, fmt, jobs, output), engine_flags)


def _run(ctx: click.Context, asked: ManyDevices, engine_flags: dict[str, Any]) -> None:
    when = check_rfc3339(asked.at, option="--at") if asked.at is not None else now_rfc3339()
    items = with_progress(iter_items(asked.inventories), label="fleet")  # every inventory checked here, first
    settings = EngineSettings(**engine_flags)
    check_bundle_given(ctx, settings)
    check_flags_used(ctx, settings)
    settings = pinned_settings(settings)
    if asked.org is not None:
        check_org_known([settings], asked.org, at=when)
    results = (pair[0] for pair in runner.run(items, [settings], at=when, org=asked.org, jobs=asked.jobs))
    summary = FleetSummary()
    if asked.fmt == "json":
        with open_output(asked.output) as out:
            write_json(results, out, summary, extra={"evaluated_at": when})
    elif asked.fmt == "html":
        from pyagent.fleet.html import write_html
        from pyagent.fleet.timeline import policy_timeline

        with open_output(asked.output) as out:
            write_html(results, out, summary, at=when, timeline=policy_timeline(settings))
    else:
        to_file = bool(asked.output and asked.output != "-")  # the text report to the file, as `check -o`
        with open_output(asked.output if to_file else None) as out:  # opened first: a bad -o before any work
            listed: list[str] = []
            problems = 0
            for result in results:
                summary.add(result)
                line = problem_line(result)
                if line is not None:
                    problems += 1
                    if len(listed) < MAX_LISTED:
                        listed.append(line)
            text = safe_lines(text_summary(summary) + problems_text(listed, problems))
            if to_file:
                out.write(text)
        # the report on stderr, or in the file with its summary on stderr too (as json and html runs)
        if to_file:
            click.echo(safe_lines(text_summary(summary)), err=True, nl=False)
        else:
            text_report(text)
        _warn_repeated(summary)
        ctx.exit(exit_code(summary))
    click.echo(safe_lines(text_summary(summary)), err=True, nl=False)  # organisations come from reports
    _warn_repeated(summary)
    ctx.exit(exit_code(summary))


def _warn_repeated(summary: FleetSummary) -> None:
    """Say on stderr that some device came in more than one report: the counts are per report."""
    warning = summary.repeated_text()
    if warning is not None:
        click.echo(safe_lines(f"pyagent: {warning}\n"), err=True, nl=False)


@fleet.command(
    epilog="""\b
Examples:
  pyagent fleet generate --devices 100000 --seed 7 -o devices.jsonl
  pyagent fleet generate --devices 50 | pyagent fleet - --at 2023-03-16T09:30:00Z
"""
)
@click.option(
    "--devices", "count", type=click.IntRange(min=0, max=10_000_000), default=1000, show_default=True
)
@click.option(
    "--seed", type=int, default=2023, show_default=True, help="Same seed, same fleet, byte for byte."
)
@click.option(
    "--apps",
    "apps_per_device",
    type=click.IntRange(min=0, max=50_000),
    default=40,
    show_default=True,
    help="Apps per device at least: filler apps pad what each device draws (its work and banned apps, "
    "a few common ones), which may be more.",
)
@output_option
def generate(count: int, seed: int, apps_per_device: int, output: str | None) -> None:
    """Write a reproducible synthetic fleet as JSONL device reports."""
    from pyagent.fleet.generate import write_jsonl

    with open_output(output) as out:
        write_jsonl(out, count, seed=seed, apps_per_device=apps_per_device)
    click.echo(f"pyagent: generated {count} devices (seed {seed})", err=True)
