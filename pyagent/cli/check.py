"""``pyagent check``: one report in, one decision out."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from pyagent.cli.options import (
    GivenPath,
    at_option,
    check_bundle_given,
    check_flags_used,
    device_fact_options,
    engine_inputs,
    engine_options,
    org_option,
    output_option,
)
from pyagent.cli.render import (
    check_output_apart,
    emit,
    emit_no_decision,
    emit_refusal,
    results_or_nothing,
    summary_line,
)
from pyagent.decide import apply_org, decide, raise_for_policy_errors
from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from pyagent.errors import InvalidInputError, NoDecisionError
from pyagent.outputs.base import STDIN_LABEL, THIS_MACHINE_SOURCE
from pyagent.outputs.registry import OutputFormatName
from pyagent.report.load import load_report
from pyagent.termsafe import safe_line
from pyagent.timeutil import check_rfc3339, now_rfc3339
from pyagent.userfile import stdin_bytes


@click.command(
    epilog="""\b
Examples:
  pyagent check report.json --at 2023-03-16T09:30:00Z
  pyagent check - --format json < report.json
  pyagent check report.json --org eeas --data exemptions.json --format sarif -o results.sarif
  pyagent check report.json --format github        # annotations in a GitHub Actions run
  pyagent check report.json --engine opa --opa-url http://127.0.0.1:8181
  pyagent check report.json --policy proposed/   # a policy directory, compiled once and cached
  pyagent check --ownership corporate --mdm-enrolled --org eu-council   # collect this machine first
  pyagent check                      # this machine, its facts from the agent config ([device])
""",
)
@click.argument("report", required=False, type=GivenPath(allow_dash=True), metavar="[REPORT]")
@org_option
@device_fact_options
@at_option
@engine_options
@click.option(
    "--policy",
    "policy_dir",
    type=GivenPath(file_okay=False),
    metavar="DIR",
    help="Decide with this policy directory (rego/ and data/ inside, or Rego and data files), compiled "
    "by opa on first use and cached in the state directory until its files change.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in OutputFormatName]),
    default=OutputFormatName.TEXT.value,
    show_default=True,
    help="text goes to stderr; json, junit, sarif, github (workflow annotations) and table to stdout "
    "(or -o).",
)
@output_option
@click.pass_context
def check(
    ctx: click.Context,
    /,
    report: str | None,
    org: str | None,
    at: str | None,
    fmt: str,
    output: str | None,
    ownership: str | None,
    mdm_enrolled: bool | None,
    mdm_provider: str | None,
    device_id: str | None,
    policy_dir: str | None,
    **engine_flags: Any,
) -> None:
    """Decide whether one device complies with the app bans.

    REPORT is a device report (JSON), or - for stdin. Without REPORT, this machine is
    collected first, its facts from --ownership/--mdm-enrolled/--device-id or the agent config.
    Exit codes: 0 compliant, 1 non-compliant, 2 invalid input, 3 no decision.
    """
    source = THIS_MACHINE_SOURCE if report is None else STDIN_LABEL if report == "-" else report
    check_output_apart(output, [report], options=[*engine_inputs(engine_flags), ("--policy", policy_dir)])
    with results_or_nothing(output):  # a bad option: no earlier run's results left as this one's
        settings = EngineSettings(**engine_flags)
        if policy_dir is not None:
            settings = with_policy_dir(ctx, settings, policy_dir)
        check_bundle_given(ctx, settings)
        check_flags_used(ctx, settings)
        when = check_rfc3339(at, option="--at") if at is not None else now_rfc3339()
    try:
        decision = _decide(settings, report, org, when, (device_id, ownership, mdm_enrolled, mdm_provider))
    except InvalidInputError as err:  # a refused input: the format may say so where it is read
        emit_refusal(err, fmt=fmt, output=output, source=source)
        raise
    except NoDecisionError as err:  # no earlier run's results left as this one's; the format may say so
        emit_no_decision(err, fmt=fmt, output=output, source=source)
        raise
    emit(decision, fmt=fmt, output=output, source=source)
    if fmt != OutputFormatName.TEXT.value:
        click.echo(summary_line(decision), err=True)
    ctx.exit(0 if decision["allow"] else 1)


def _decide(
    settings: EngineSettings,
    report: str | None,
    org: str | None,
    when: str,
    machine: tuple[str | None, str | None, bool | None, str | None],
) -> dict[str, Any]:
    """The decision for REPORT (or this machine, collected with ``machine``'s facts), its policy errors
    raised (:func:`raise_for_policy_errors`)."""
    device_id, ownership, mdm_enrolled, mdm_provider = machine
    if report is None:
        from pyagent.cli.collect import collect_this_machine
        from pyagent.facts import FactFlags

        facts = FactFlags(
            device_id=device_id, ownership=ownership, mdm_enrolled=mdm_enrolled, mdm_provider=mdm_provider
        )
        document, source = collect_this_machine(org=org, flags=facts), THIS_MACHINE_SOURCE
    else:
        if (device_id, ownership, mdm_enrolled, mdm_provider) != (None, None, None, None):
            raise InvalidInputError(
                "--ownership, --mdm-enrolled, --mdm-provider and --device-id describe this machine: "
                "give them without REPORT, or put the facts in the report"
            )
        document = load_report(report, stdin=stdin_bytes() if report == "-" else None)
        source = STDIN_LABEL if report == "-" else report
    document, notes = apply_org(document, org)
    for note in notes:
        click.echo(f"pyagent: note: {safe_line(note)}", err=True)
    with build_engine(settings) as engine:
        decision = decide(engine, document, at=when)
    errors = decision.get("errors") or [{}]
    if org is not None and errors[0].get("code") == "unknown_organization":
        source = "--org"  # the organisation came from the flag, not from the report
    raise_for_policy_errors(decision, source=source)
    return decision


def with_policy_dir(ctx: click.Context, settings: EngineSettings, policy_dir: str) -> EngineSettings:
    """The settings with ``--policy DIR``, compiled or from the cache, as the embedded engine's bundle."""
    from pyagent.engines.base import EngineName
    from pyagent.engines.select import resolve
    from pyagent.policy.compiled import compile_policy

    if settings.bundle and ctx.get_parameter_source("bundle") is not click.core.ParameterSource.ENVIRONMENT:
        raise InvalidInputError("--policy and --bundle both name the policy: give one")
    if resolve(settings) is not EngineName.EMBEDDED or settings.fallback_embedded:
        raise InvalidInputError("--policy decides with the embedded engine; an OPA server has its own policy")
    if settings.verification_key:
        raise InvalidInputError("--policy compiles an unsigned bundle: --verification-key is for --bundle")
    bundle = compile_policy(policy_dir, state_dir=settings.state_dir)
    return dataclasses.replace(settings, bundle=str(bundle))
