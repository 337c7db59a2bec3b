"""Issue 16, item 2 (bundle files): crafted bundles are refused before they are in memory.

Each bomb is a small file on disk that inflates to far more than any bound: a gzip stream split into
many members of 127 MiB of zeros, one member of 1 GiB, a 900 MiB pax header, a 100 MiB GNU long name,
20,000 members, a path of 5,000 characters. A member's size is refused at its header, as OPA's reader
refuses a file over ``size_limit_bytes``, before its bytes are inflated. ``pyagent check --bundle``
(a real process) refuses each with exit 3 and the bound it broke, within seconds, with a peak RSS
(from /proc) under 256 MB.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.wasm.tarscan import Budget, ScanRefused, scan
from tests.attack.conftest import run_pyagent_measured
from tests.attack.tar_bombs import MIB, bomb, header, sparse
from tests.helpers import domain

AT = "2023-03-16T09:30:00Z"
RSS_BOUND = 256 * MIB


def many_members(count: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for i in range(count):
            archive.addfile(tarfile.TarInfo(f"m{i}"), io.BytesIO(b""))
    return out.getvalue()


def long_path(chars: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("d/" + "a" * chars)
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    return out.getvalue()


CASES = {
    "gzip-members": (
        lambda: bomb([(f"m{i}", 127 * MIB, b"0") for i in range(4)]),
        "member m1: members total over the bound",
    ),
    "one-member": (
        lambda: bomb([("big", 1024 * MIB, b"0")]),
        f"member big: {1024 * MIB} bytes, over {128 * MIB}",
    ),
    "pax-header": (
        lambda: bomb([("././@PaxHeader", 900 * MIB, b"x"), ("policy.wasm", 0, b"0")]),
        f"a pax header of {900 * MIB} bytes, over the bound of 65536",
    ),
    "gnu-long-name": (
        lambda: bomb([("././@LongLink", 100 * MIB, b"L"), ("policy.wasm", 0, b"0")]),
        f"a GNU long name of {100 * MIB} bytes, over the bound of 65536",
    ),
    "members": (lambda: many_members(20_000), "more than 10000 members"),
    "gnu-sparse": (
        lambda: sparse("policy.wasm", 262_143),  # (took 767 MB and 9.7 s: tarfile read every map)
        "member policy.wasm: a GNU sparse file (type S): not in a policy bundle",
    ),
    "path": (lambda: long_path(5000), 'member "d/' + "a" * 58 + '"...: path over 1024 characters'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bundle_bomb_is_refused_within_bounds(case: str, tmp_path: Path, write_report: Any) -> None:
    make, message = CASES[case]
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(make())
    assert path.stat().st_size < 8 * MIB  # small on disk, huge once inflated
    report = write_report(domain.make_report("india", "android", "corporate", True, []))
    run = run_pyagent_measured("check", report, "--at", AT, "--engine", "embedded", "--bundle", str(path))
    assert (run.code, run.stderr.strip()) == (3, f"pyagent: error: bundle {path}: {message}")
    assert run.seconds < 15
    assert 0 < run.peak_rss < RSS_BOUND, run.peak_rss


def test_the_decompressed_bytes_are_bounded_whatever_the_headers_say() -> None:
    """The inflated stream is counted too: here its bound is below what the members may declare."""
    budget = Budget(
        max_decompressed=MIB, max_members=10, max_header_bytes=512, max_member_bytes=8 * MIB,
        max_total_bytes=8 * MIB,
    )  # fmt: skip
    with pytest.raises(ScanRefused) as err:
        scan(bomb([("policy.wasm", 4 * MIB, b"0")]), budget)
    assert str(err.value) == f"over {MIB} bytes once decompressed"
    scan(bomb([("policy.wasm", MIB // 2, b"0")]), budget)  # within: no refusal


def _pax(records: bytes, kind: bytes = b"x") -> bytes:
    """A pax header of ``records`` (padded), compressed."""
    block = header("././@PaxHeader", len(records), kind) + records + b"\0" * (-len(records) % 512)
    return gzip.compress(block)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (b"13 size=1024\n", "a pax header sets size=1024: not in a policy bundle"),
        (b"22 GNU.sparse.major=1\n", "a pax header sets GNU.sparse.major=1: not in a policy bundle"),
        (b"99 size=1\n", "not a readable tar.gz: a pax header that is not pax records"),
    ],
)
def test_a_pax_header_that_would_part_the_scan_from_tarfile_is_refused(records: bytes, message: str) -> None:
    """A member of size 0 made 1024 by its pax header, its "data" a zero block: the scan read that as
    the archive's end while tarfile read on, into a 300 MiB pax header that no bound then saw."""
    zero_block_data = gzip.compress(b"\0" * 1024)
    huge = gzip.compress(header("././@PaxHeader", 300 * MIB, b"x"))
    raw = _pax(records) + gzip.compress(header("policy.wasm", 0, b"0")) + zero_block_data + huge
    budget = Budget(
        max_decompressed=128 * MIB, max_members=10, max_header_bytes=65536, max_member_bytes=MIB,
        max_total_bytes=MIB,
    )  # fmt: skip
    with pytest.raises(ScanRefused) as err:
        scan(raw, budget)
    assert str(err.value) == message


def test_a_solaris_pax_header_is_bounded_as_a_pax_header() -> None:
    budget = Budget(
        max_decompressed=128 * MIB, max_members=10, max_header_bytes=65536, max_member_bytes=MIB,
        max_total_bytes=MIB,
    )  # fmt: skip
    with pytest.raises(ScanRefused) as err:
        scan(bomb([("././@PaxHeader", 100 * MIB, b"X"), ("policy.wasm", 0, b"0")]), budget)
    assert str(err.value) == f"a pax header of {100 * MIB} bytes, over the bound of 65536"


def test_a_sparse_member_cut_short_is_refused_at_its_header() -> None:
    """Its last extension block promises another, and the archive ends: tarfile raised an IndexError,
    an internal error where a refusal belongs."""
    budget = Budget(
        max_decompressed=128 * MIB, max_members=10, max_header_bytes=65536, max_member_bytes=MIB,
        max_total_bytes=MIB,
    )  # fmt: skip
    with pytest.raises(ScanRefused) as err:
        scan(sparse("policy.wasm", 3, ended=False), budget)
    assert str(err.value) == "member policy.wasm: a GNU sparse file (type S): not in a policy bundle"
