"""``pyagent collect``: build a device report from this machine, a phone over adb, or an export."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from pyagent.cli.options import GivenPath, agent_config_option, identifier, non_empty
from pyagent.collectors.base import Inventory
from pyagent.collectors.registry import CollectorName, collector_options, get_collector
from pyagent.config.agent import agent_settings, load_config
from pyagent.errors import InvalidInputError
from pyagent.facts import FactFlags, build_report, resolve_facts, this_machine_id
from pyagent.report.load import check_report
from pyagent.timeutil import check_rfc3339
from pyagent.userfile import replace_file


@click.command(
    epilog="""\b
Examples:
  pyagent collect --device-id laptop-17 --ownership corporate --mdm-enrolled --org eu-commission
  pyagent collect --source android-pm --from pm-list.txt --device-id phone-1 \\
      --ownership personal --no-mdm-enrolled --org eu-council -o report.json
  pyagent collect --source android-pm --serial R58M123 --device-id phone-2 ...   # live, over adb
  pyagent collect --source osquery --from apps.json --device-id mac-3 ...
  pyagent collect --source android-pm --from pm-list.txt --collected-at 2023-03-16T09:30:00Z ...
  pyagent collect --source intune --from detectedApps.json --platform android ...
  pyagent collect --source ios-mdm --from InstalledApplicationList.plist ...
""",
)
@click.option(
    "--source",
    type=click.Choice([name.value for name in CollectorName]),
    default=None,
    help="Where the inventory comes from (default: this machine, as the agent reads it: agent.source "
    "of the agent config, else linux).",
)
@click.option("--from", "from_file", type=GivenPath(dir_okay=False), help="An exported inventory file.")
@click.option("--serial", help="android-pm: the adb device serial (live mode).")
@click.option("--user", type=click.IntRange(min=0, max=2**31 - 1), help="android-pm: only this Android user.")
@click.option("--table", help="osquery: the table the export came from (default: detected).")
@click.option(
    "--platform",
    type=click.Choice(["android", "ios", "windows", "macos"]),
    help="intune: the platform of the exported apps, when the export does not say.",
)
@click.option("--org", callback=non_empty, help="The device's organisation (config: device.organization).")
@click.option("--ownership", type=click.Choice(["corporate", "personal"]), help="config: device.ownership")
@click.option("--mdm-enrolled/--no-mdm-enrolled", default=None, help="config: device.mdm_enrolled")
@click.option("--mdm-provider", callback=non_empty, help="config: device.mdm_provider")
@click.option("--device-id", callback=identifier, help="config: device.id")
@click.option(
    "--work-profile/--no-work-profile",
    default=None,
    help="Whether the phone has a work profile (Android): live adb tells, a pm capture cannot.",
)
@agent_config_option
@click.option(
    "--collected-at",
    metavar="TIME",
    help="When the inventory was taken, RFC 3339 (default: now); for a capture or an export made earlier.",
)
@click.option(
    "-o",
    "--output",
    type=GivenPath(dir_okay=False, allow_dash=True),
    callback=non_empty,
    help="Write the report here.",
)
def collect(
    source: str | None,
    from_file: str | None,
    serial: str | None,
    user: int | None,
    table: str | None,
    platform: str | None,
    org: str | None,
    ownership: str | None,
    mdm_enrolled: bool | None,
    mdm_provider: str | None,
    device_id: str | None,
    work_profile: bool | None,
    config_path: str | None,
    collected_at: str | None,
    output: str | None,
) -> None:
    """Build a device report (JSON), validated against the schema before it is written."""
    config = load_config(config_path)
    settings = agent_settings(config)
    name = source or settings.source  # (this machine, as `agent run` and `check` read it)
    if source is None and table is None:
        table = settings.osquery_table
    options: dict[str, Any] = {
        "from_file": from_file,
        "serial": serial,
        "user": user,
        "table": table,
        "platform": platform,
    }
    _check_flags(name, options)
    if collected_at is not None:
        collected_at = check_rfc3339(collected_at, option="--collected-at")
    if work_profile is not None and name not in _WORK_PROFILE_SOURCES:
        raise click.UsageError(
            f"--source {name} does not take --work-profile/--no-work-profile (a phone's: "
            f"{', '.join(_WORK_PROFILE_SOURCES)})"
        )
    if from_file and from_file != "-" and output and output != "-" and _same_file(from_file, output):
        raise click.UsageError(f"-o {output} is the --from file: writing the report would overwrite it")
    flags = FactFlags(
        device_id=device_id,
        ownership=ownership,
        mdm_enrolled=mdm_enrolled,
        organization=org,
        mdm_provider=mdm_provider,
        work_profile=work_profile,
    )
    # Only this machine's own id is visible to pyagent; a phone or an export needs --device-id.
    reads_this_machine = name == CollectorName.LINUX.value or (
        name == CollectorName.OSQUERY.value and not from_file
    )
    default_id = this_machine_id() if reads_this_machine else None
    facts = resolve_facts(flags, config, default_device_id=default_id)
    if default_id is None and device_id is None:  # the config's id is most likely this machine's own
        click.echo(
            f"pyagent: note: device id {facts.device_id!r} is device.id of {config.source}, the agent "
            f"config; if the {name} inventory is another device's, give --device-id",
            err=True,
        )
    inventory = get_collector(name, **options).collect()
    _note_other_users(inventory, work_profile)
    report = build_report(inventory, facts, collected_at=collected_at)
    check_report(report, f"report collected from {name}")
    try:  # encoded before -o is opened: a file there is replaced only by a whole report
        data = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInputError(f"report collected from {name}: text not UTF-8 ({err.reason})") from err
    if output and output != "-":
        try:
            replace_file(output, data)
        except OSError as err:
            raise InvalidInputError(f"-o {output}: cannot write: {err.strerror}") from err
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    click.echo(
        f"pyagent: collected {len(report['apps'])} app{'' if len(report['apps']) == 1 else 's'} from {name} "
        f"({report['device']['platform']})",
        err=True,
    )


#: The collectors' options as ``collect`` spells them.
_FLAGS = {
    "from_file": "--from",
    "serial": "--serial",
    "user": "--user",
    "table": "--table",
    "platform": "--platform",
}


def _check_flags(name: str, options: dict[str, Any]) -> None:
    """A flag the chosen collector does not read is a usage error naming the flags it does read."""
    accepted = set(collector_options(name))
    unused = [_FLAGS[key] for key, value in options.items() if value is not None and key not in accepted]
    if unused:
        takes = [flag for key, flag in _FLAGS.items() if key in accepted]
        also = f"it takes {', '.join(takes)}" if takes else "it reads this machine"
        raise click.UsageError(f"--source {name} does not take {', '.join(unused)} ({also})")


#: The sources whose devices may have a work profile (Android phones; an Intune export of one).
_WORK_PROFILE_SOURCES = (CollectorName.ANDROID_PM.value, CollectorName.INTUNE.value)


def _note_other_users(inventory: Inventory, work_profile: bool | None) -> None:
    """A pm capture listing other Android users than the main one cannot say whether one of them is
    a work profile (which puts a personal phone in scope ``personal-with-work-apps``): said, so that
    the flag is given."""
    users = inventory.facts.get("android_users_seen")
    others = [u for u in users if u != 0] if isinstance(users, list) else []
    if work_profile is not None and inventory.work_profile not in (None, work_profile):
        seen = "a work profile" if inventory.work_profile else "no work profile"
        flag = "--work-profile" if work_profile else "--no-work-profile"
        click.echo(f"pyagent: note: {flag} overrides what the device showed ({seen})", err=True)
    if others and inventory.work_profile is None and work_profile is None:
        listed = ", ".join(str(user) for user in others)
        main_listed = isinstance(users, list) and 0 in users
        lists = f"{listed} besides user 0" if main_listed else f"{listed}, not the main user 0"
        click.echo(
            f"pyagent: note: the capture lists Android user {lists}; if one is a work profile, say so "
            "with --work-profile (a capture cannot tell; live adb does)",
            err=True,
        )


def _same_file(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return False


def collect_this_machine(*, org: str | None, flags: FactFlags | None = None) -> dict[str, Any]:
    """The report for this machine (``check`` with no REPORT): facts from flags, else the agent config;
    the device id defaults to the host name."""
    given = flags or FactFlags()
    config = load_config()
    facts = resolve_facts(
        FactFlags(
            device_id=given.device_id,
            ownership=given.ownership,
            mdm_enrolled=given.mdm_enrolled,
            organization=org,
            mdm_provider=given.mdm_provider,
        ),
        config,
        default_device_id=this_machine_id(),
        organization_required=True,
    )
    inventory = agent_settings(config).collector().collect()
    report = build_report(inventory, facts)
    check_report(report, "report collected from this machine")
    return report
