"""Every organisation x platform x ownership x enrolment x work-app situation x TikTok-family app, on
both engines, against the facts of domain.md (tests/helpers/domain.py), before and after 15 March 2023."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pyagent.decide import decide
from pyagent.engines.base import Engine, EngineSettings
from pyagent.engines.select import build_engine
from tests.helpers import domain
from tests.helpers.opa_server import RunningOpa

TIMES = ("2023-03-01T12:00:00Z", "2023-03-16T09:30:00Z")


def cases() -> Iterator[tuple[str, dict[str, Any], str]]:
    for org, platform, ownership, enrolled, work in itertools.product(
        domain.ORGS,
        ("android", "ios", "windows"),
        ("corporate", "personal"),
        (True, False),
        ("none", "work-app", "work-profile"),
    ):
        work_apps = list(domain.WORK_APPS.get(platform, ()))[:1] if work == "work-app" else []
        for banned in [*domain.TIKTOK_FAMILY[platform], *domain.NOT_BANNED_BYTEDANCE.get(platform, ()), None]:
            apps = [*work_apps, *([banned] if banned else []), "org.example.notes"]
            report = domain.make_report(
                org,
                platform,
                ownership,
                enrolled,
                apps,
                work_profile=True if work == "work-profile" else None,
            )
            for at in TIMES:
                yield f"{org}-{platform}-{ownership}-{enrolled}-{work}-{banned}-{at[:10]}", report, at


CASES = list(cases())


@pytest.fixture(scope="module", params=["embedded", "opa"])
def engine(request: pytest.FixtureRequest, policy_bundle: Path) -> Iterator[Engine]:
    if request.param == "embedded":
        settings = EngineSettings(engine="embedded", bundle=str(policy_bundle))
    else:
        server: RunningOpa = request.getfixturevalue("opa_server")
        settings = EngineSettings(engine="opa", opa_url=server.url)
    with build_engine(settings) as built:
        yield built


def test_matrix_is_large_enough() -> None:
    assert len(CASES) == 2304  # 6 organisations x 3 platforms x 2 x 2 x 3 x each app case x 2 instants


def test_every_case_matches_the_domain(engine: Engine) -> None:
    mismatches = []
    for label, report, at in CASES:
        decision = decide(engine, report, at=at)
        violations, warnings = domain.expected_banned(report, datetime.fromisoformat(at))
        got_v = {v["app_id"] for v in decision["violations"]}
        got_w = {w["app_id"] for w in decision["warnings"]}
        if (got_v, got_w, decision["allow"], decision["errors"]) != (
            violations,
            warnings,
            not violations,
            [],
        ):
            mismatches.append((label, sorted(got_v), sorted(got_w), sorted(violations), sorted(warnings)))
    assert mismatches == []
