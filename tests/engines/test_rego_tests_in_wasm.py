"""Every Rego unit test, run through the embedded engine too.

`opa test` runs the tests on OPA's evaluator; here the same test rules are compiled by the pinned
`opa build -t wasm` (one entrypoint per test) and evaluated by the embedded engine. Both must pass
the same tests, fixtures and all. Tests that call built-ins the embedded host does not provide (only
`time.parse_rfc3339_ns` comparisons and `crypto.sha256` in the server authz tests) are listed, so
the list cannot silently grow.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from pyagent.engines.wasm.bundle import read_bundle
from pyagent.engines.wasm.runtime import WasmPolicy
from tests.helpers.opa_server import POLICY_DIRS

REGO = POLICY_DIRS[0]
TEST_RULE = re.compile(r"^(test_\w+) if\b", re.MULTILINE)
PACKAGE = re.compile(r"^package ([\w.]+)$", re.MULTILINE)
# Tests whose subject is OPA's own built-ins or the server's authz policy, not the ban policy.
TOPDOWN_ONLY = {"system/authz_test"}


def rego_tests() -> list[str]:
    found = []
    for path in sorted(REGO.rglob("*_test.rego")):
        text = path.read_text()
        package = PACKAGE.search(text)
        assert package, path
        prefix = package.group(1).replace(".", "/")
        if prefix in TOPDOWN_ONLY:
            continue
        found += [f"{prefix}/{name}" for name in TEST_RULE.findall(text)]
    return found


TESTS = rego_tests()


@pytest.fixture(scope="module")
def compiled(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> WasmPolicy:
    out = tmp_path_factory.mktemp("rego-tests") / "tests.tar.gz"
    args = [opa_bin, "build", "-t", "wasm", "-o", str(out)]
    for entrypoint in TESTS:
        args += ["-e", entrypoint]
    subprocess.run([*args, *(str(p) for p in POLICY_DIRS)], check=True, capture_output=True)
    bundle = read_bundle(out)
    policy = WasmPolicy(bundle.wasm)
    policy.set_data(bundle.data)
    return policy


def test_every_rego_test_that_opa_runs_is_run_here(opa_bin: str) -> None:
    """The names found above are exactly those `opa test` runs (the server's authz tests aside), so a
    test the pattern misses cannot drop out silently."""
    done = subprocess.run(
        [opa_bin, "test", "--format", "json", *(str(p) for p in POLICY_DIRS)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    ran = {
        f"{t['package'].removeprefix('data.').replace('.', '/')}/{t['name']}" for t in json.loads(done.stdout)
    }
    assert sorted(name for name in ran if not name.startswith(tuple(TOPDOWN_ONLY))) == sorted(TESTS)
    assert len(TESTS) == len(set(TESTS)) > 100


@pytest.mark.parametrize("entrypoint", TESTS)
def test_rego_test_passes_in_the_embedded_engine(compiled: WasmPolicy, entrypoint: str) -> None:
    assert compiled.evaluate({}, entrypoint=entrypoint) is True
