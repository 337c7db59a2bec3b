"""A copy of the shipped policies/ to edit, and the data mistakes of issue 17 applied to it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.cli import invoke

#: ``pyagent ARGS`` in-process (click's runner); see :func:`tests.helpers.cli.invoke`.
run = invoke

REPO = Path(__file__).resolve().parents[2]
ORGS = Path("data") / "pyagent" / "organizations" / "data.yaml"
KNOWN_ORGS = "eeas, eu-commission, eu-council, eu-parliament, india, us-federal"
TIMESTAMP_MESSAGE = (
    "expected an RFC 3339 date-time such as 2023-03-16T09:30:00Z (upper-case T and Z, a real calendar date)"
)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of policies/ (rego/ and data/) to edit."""
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root)
    return root


@dataclass(frozen=True)
class Mistake:
    """An edit of organizations/data.yaml and the one problem it must be reported as."""

    name: str
    old: str
    new: str
    needle: str  # the text on the reported line, after the edit
    path: str
    message: str
    nth: int = 1

    def apply(self, root: Path) -> str:
        """Edit the copy; return ``FILE:LINE: PATH: MESSAGE`` as pyagent must print it."""
        target = root / ORGS
        text = target.read_text(encoding="utf-8")
        assert text.count(self.old) == 1, self.old  # one place to edit, not the first of several
        text = text.replace(self.old, self.new, 1)
        target.write_text(text, encoding="utf-8")
        message = self.message.replace("{first}", str(line_of(text, self.needle)))
        return f"{target}:{line_of(text, self.needle, self.nth)}: {self.path}: {message}"


SECOND_COUNCIL = "eu-council:\n  title: A second Council entry\n  inherits: []\n  rules: {}\n"
US_RULE = '      effective_from: "2022-12-29T00:00:00Z"\n      enforcement: deny\n'

MISTAKES = [
    Mistake(
        "second-eu-council-key",
        "eeas:\n",
        SECOND_COUNCIL + "eeas:\n",
        "eu-council:",
        "data.pyagent.organizations.eu-council",
        "duplicate key (first at line {first}); the second would replace the first",
        nth=2,
    ),
    Mistake(
        "rule-names-missing-ban",
        "      ban: tiktok\n      scopes: [all]\n",
        "      ban: tiktok-lite\n      scopes: [all]\n",
        "ban: tiktok-lite",
        "data.pyagent.organizations.india.rules.tiktok.ban",
        "rule names unknown ban 'tiktok-lite'; known: capcut, lemon8, tiktok",
    ),
    Mistake(
        "enforcement-block",
        US_RULE,
        US_RULE.replace("deny", "block"),
        "enforcement: block",
        "data.pyagent.organizations.us-federal.rules.tiktok.enforcement",
        'expected one of "deny", "warn", "dryrun", got "block"',
    ),
    Mistake(
        "effective-from-without-zone",
        US_RULE,
        US_RULE.replace("00:00Z", "00:00"),
        '"2022-12-29T00:00:00"',
        "data.pyagent.organizations.us-federal.rules.tiktok.effective_from",
        TIMESTAMP_MESSAGE + ', got "2022-12-29T00:00:00"',
    ),
    Mistake(
        "inherits-no-such-org",
        "inherits: [eu-commission]",
        "inherits: [no-such-org]",
        "inherits: [no-such-org]",
        "data.pyagent.organizations.eeas.inherits[0]",
        f"inherits unknown organisation 'no-such-org'; known: {KNOWN_ORGS}",
    ),
    Mistake(
        "inheritance-cycle",
        "  title: European Commission\n  inherits: []",
        "  title: European Commission\n  inherits: [eeas]",
        "inherits: [eu-commission]",
        "data.pyagent.organizations.eeas.inherits",
        "inheritance cycle: eeas -> eu-commission -> eeas",
    ),
]

mistakes = pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
