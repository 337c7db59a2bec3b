"""Device facts the collectors cannot see (ownership, enrolment, organisation, device id),
from flags or the agent config, flags winning; and the device report built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyagent.errors import InvalidInputError
from pyagent.timeutil import now_rfc3339

if TYPE_CHECKING:  # imported for annotations only: `pyagent check REPORT` needs neither
    from pyagent.collectors.base import Inventory
    from pyagent.config.agent import AgentConfig

OWNERSHIPS = ("corporate", "personal")


@dataclass(frozen=True)
class DeviceFacts:
    """What the report needs beyond the inventory."""

    device_id: str
    ownership: str
    mdm_enrolled: bool
    organization: str | None = None
    mdm_provider: str | None = None
    work_profile: bool | None = None
    """Stated on the command line (``collect --work-profile``); None: as the collector saw it."""


@dataclass(frozen=True)
class FactFlags:
    """The facts as given on the command line (None: not given)."""

    device_id: str | None = None
    ownership: str | None = None
    mdm_enrolled: bool | None = None
    organization: str | None = None
    mdm_provider: str | None = None
    work_profile: bool | None = None


def this_machine_id() -> str | None:
    """This machine's host name: the device id a report of this machine gets when none is given."""
    import socket  # only when the host name is needed

    name = socket.gethostname().strip()
    return name or None


def resolve_facts(
    flags: FactFlags,
    config: AgentConfig,
    *,
    default_device_id: str | None = None,
    organization_required: bool = False,
) -> DeviceFacts:
    """Flags win over the config; every missing required fact is named in one error, with its flag and
    its config key. ``organization_required``: a decision is asked of this machine (``check``), which
    has no report to name the organisation."""
    where = config.source or "the agent config"
    missing: list[tuple[str, str]] = []

    def pick(flag_value: Any, key: str, flag: str, *, required: bool) -> Any:
        if flag_value is not None:
            return flag_value
        if key in config.device:
            return config.device[key]
        if required:
            missing.append((flag, f"device.{key}"))
        return None

    device_id = pick(flags.device_id, "id", "--device-id ID", required=default_device_id is None)
    named = f"device.id in {where}" if device_id is not None else "this machine's host name, the device id,"
    device_id = default_device_id if device_id is None else device_id
    ownership = pick(flags.ownership, "ownership", "--ownership corporate|personal", required=True)
    enrolled = pick(flags.mdm_enrolled, "mdm_enrolled", "--mdm-enrolled/--no-mdm-enrolled", required=True)
    organization = pick(flags.organization, "organization", "--org ORG", required=organization_required)
    provider = pick(flags.mdm_provider, "mdm_provider", "--mdm-provider NAME", required=False)
    if missing:
        flags_given = ", ".join(flag for flag, _ in missing)
        keys = ", ".join(key for _, key in missing)
        noun = "fact" if len(missing) == 1 else "facts"
        raise InvalidInputError(f"missing device {noun}: give {flags_given}, or set {keys} in {where}")
    if not isinstance(device_id, str) or not device_id.strip():
        raise InvalidInputError(f"device.id in {where} must be a non-empty string")
    from pyagent.termsafe import unmatchable

    if unmatchable(device_id) is not None:  # (no exemption would match it)
        raise InvalidInputError(
            f"{named} must not begin or end with white space or hold an invisible character, got "
            f"{device_id!r} (give --device-id)"
        )
    if ownership not in OWNERSHIPS:
        raise InvalidInputError(
            f"device.ownership in {where} must be corporate or personal, got {ownership!r}"
        )
    if not isinstance(enrolled, bool):
        raise InvalidInputError(f"device.mdm_enrolled in {where} must be true or false, got {enrolled!r}")
    for key, value in (("organization", organization), ("mdm_provider", provider)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInputError(f"device.{key} in {where} must be a non-empty string")
    return DeviceFacts(device_id, ownership, enrolled, organization, provider, flags.work_profile)


def build_report(
    inventory: Inventory, facts: DeviceFacts, *, collected_at: str | None = None
) -> dict[str, Any]:
    """A device report (CONTRACT section 1) from an inventory and the device facts."""
    mdm: dict[str, Any] = {"enrolled": facts.mdm_enrolled}
    if facts.mdm_provider:
        mdm["provider"] = facts.mdm_provider
    device: dict[str, Any] = {"id": facts.device_id, "platform": inventory.platform}
    if inventory.os_version:
        device["os_version"] = inventory.os_version
    device["ownership"] = facts.ownership
    if facts.organization:
        device["organization"] = facts.organization
    device["mdm"] = mdm
    work_profile = facts.work_profile if facts.work_profile is not None else inventory.work_profile
    if work_profile is not None:
        device["work_profile"] = work_profile
    if inventory.facts:
        device["extra"] = dict(inventory.facts)
    return {
        "schema_version": 1,
        "collected_at": collected_at or now_rfc3339(),
        "device": device,
        "apps": inventory.apps_json(),
        "collector": inventory.collector_json(ownership=facts.ownership),
    }
