"""Writing a fleet run: the JSON document (summary first, devices streamed through a temporary
file so memory stays flat), and a text summary for people."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from typing import IO, Any

from pyagent.errors import and_more
from pyagent.fleet.summary import FleetSummary, device_status
from pyagent.termsafe import printable

DEVICE_FIELDS = ("device_id", "organization", "allow", "violations", "warnings", "exempted", "errors")


def device_entry(result: dict[str, Any]) -> dict[str, Any]:
    """The contract's device entry, plus where it came from and its platform."""
    entry = {key: result.get(key) for key in DEVICE_FIELDS}
    entry["platform"] = result.get("platform")
    entry["source"] = result.get("source")
    return entry


def write_json(
    results: Iterable[dict[str, Any]],
    out: IO[str],
    summary: FleetSummary,
    extra: dict[str, Any] | None = None,
) -> None:
    """``{"summary": {...}, "devices": [...]}``, every device counted into ``summary`` on the way."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        first = True
        for result in results:
            summary.add(result)
            spool.write(
                ("" if first else ",\n") + "    " + json.dumps(device_entry(result), ensure_ascii=False)
            )
            first = False
        head = {"summary": summary.as_dict(), **(extra or {})}
        text = json.dumps(head, indent=2, ensure_ascii=False)
        out.write(text[:-2] + ',\n  "devices": [\n')
        spool.seek(0)
        shutil.copyfileobj(spool, out)
        out.write("\n  ]\n}\n" if not first else "  ]\n}\n")


#: Invalid and undecided devices listed by the text report (all of them are in ``--format json``).
MAX_LISTED = 50


def problem_line(device: dict[str, Any]) -> str | None:
    """One line for a device that could not be decided as compliant or not (invalid, undecided):
    where it came from, what it is, and its first error; None for a decided device."""
    status = device_status(device)
    if status not in ("invalid", "undecided"):
        return None
    errors = device.get("errors") or []
    first = errors[0] if errors else {}
    source = str(device.get("source"))
    message = str(first.get("message", "")).removeprefix(f"{source}: ")
    where = f"{first['path']}: " if first.get("path") else ""
    more = and_more(len(errors) - 1, "error")
    name = f" ({device['device_id']})" if device.get("device_id") else ""
    # one line, whatever the names hold: a newline in a file name must not print a line of its own
    return "  " + printable(f"{status}: {source}{name}: {where}{message}{more}")


def problems_text(lines: list[str], count: int) -> str:
    """The listed problem lines, and how many more there are."""
    rest = (
        f"  ... and {count - len(lines)} more (--format json lists them all)\n" if count > len(lines) else ""
    )
    return "".join(line + "\n" for line in lines) + rest


def text_summary(summary: FleetSummary) -> str:
    """A few lines a person reads in ten seconds."""
    s = summary.as_dict()
    lines = [
        f"{s['devices']} devices: {s['compliant']} compliant, {s['non_compliant']} non-compliant, "
        f"{s['invalid']} invalid" + (f", {s['undecided']} undecided" if s["undecided"] else ""),
    ]
    for org, counts in s["by_organization"].items():
        lines.append(
            f"  {org}: {counts['non_compliant']} of {counts['devices']} non-compliant"
            + (f", {counts['invalid']} invalid" if counts["invalid"] else "")
        )
    for ban, counts in s["by_ban"].items():
        apps = ", ".join(f"{app} ({n})" for app, n in counts["apps"].items())
        lines.append(f"  ban {ban}: {counts['devices']} devices in violation" + (f": {apps}" if apps else ""))
    return "\n".join(lines) + "\n"
