"""The one bounded reader of files users name (pyagent/userfile.py): every refusal exact, nothing read
past the limit, pipes neither hanging nor refused where a secret may come from one."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from pyagent.errors import InvalidInputError
from pyagent.userfile import read_limited, read_text, size_text
from tests.helpers.unprivileged import as_unprivileged, shared_dir


class TokenError(InvalidInputError):
    """A caller's own error class, raised in place of InvalidInputError."""


def _refusal(path: str | Path, **options: object) -> str:
    with pytest.raises(InvalidInputError) as caught:
        read_limited(path, what="report", limit=16, **options)  # type: ignore[arg-type]
    return str(caught.value)


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (128 << 20, "128 MiB"),
        (64 << 10, "64 KiB"),
        (1 << 30, "1 GiB"),
        (1000, "1000 bytes"),
        (1536, "1536 bytes"),
    ],
)
def test_limits_read_as_people_write_them(limit: int, text: str) -> None:
    assert size_text(limit) == text


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(b"0123456789abcdef")
    assert read_limited(tmp_path / "r.json", what="report", limit=16) == b"0123456789abcdef"


def test_a_missing_file_is_named_with_what_it_should_have_been(tmp_path: Path) -> None:
    assert _refusal(tmp_path / "none.json") == f"{tmp_path / 'none.json'}: report not found"


def test_a_dangling_link_says_so(tmp_path: Path) -> None:
    (tmp_path / "link.json").symlink_to(tmp_path / "gone.json")
    assert _refusal(tmp_path / "link.json") == (
        f"{tmp_path / 'link.json'}: report not found (a symbolic link to a missing file)"
    )


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert _refusal(tmp_path) == f"{tmp_path}: report is a directory, not a regular file"
    assert _refusal(tmp_path, regular_only=False) == f"{tmp_path}: report is a directory, not a regular file"


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_bytes(b"x" * 17)
    assert _refusal(tmp_path / "big.json") == f"{tmp_path / 'big.json'}: report is larger than 16 bytes"


def test_an_endless_device_is_refused_or_read_no_further_than_the_limit() -> None:
    assert _refusal("/dev/zero") == "/dev/zero: report is a device, not a regular file"
    assert _refusal("/dev/zero", regular_only=False) == "/dev/zero: report is larger than 16 bytes"


def test_a_pipe_nobody_writes_to_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert _refusal(fifo) == f"{fifo}: report is a pipe, not a regular file"


def test_a_pipe_is_read_where_pipes_are_welcome(tmp_path: Path) -> None:
    """A secret given as ``<(pass show token)`` is a pipe."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"s3cret\n"))
    writer.start()
    try:
        assert read_text(fifo, what="token", limit=64, regular_only=False) == "s3cret\n"
    finally:
        writer.join(5)


def test_stdin_is_bounded_and_named(tmp_path: Path) -> None:
    assert read_limited("-", what="report", limit=4, stdin=io.BytesIO(b"abcd")) == b"abcd"
    with pytest.raises(InvalidInputError) as caught:
        read_limited("-", what="report", limit=4, stdin=io.BytesIO(b"abcde"))
    assert str(caught.value) == "<stdin>: report is larger than 4 bytes"


def test_text_that_is_not_utf8_names_the_byte_and_where(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_bytes(b"key: caf\xe9\n")
    with pytest.raises(TokenError) as caught:
        read_text(tmp_path / "t.yaml", what="policy data", limit=64, error=TokenError)
    assert (
        str(caught.value) == f"{tmp_path / 't.yaml'}: policy data is not UTF-8 text (byte 0xe9 at offset 8)"
    )


def test_the_callers_error_class_and_name_are_used(tmp_path: Path) -> None:
    with pytest.raises(TokenError) as caught:
        read_limited(tmp_path / "none", what="token", limit=8, error=TokenError, name="service acme")
    assert str(caught.value) == "service acme: token not found"


def test_an_unreadable_file_gives_the_systems_reason() -> None:
    with shared_dir() as directory:
        secret = directory / "secret"
        secret.write_bytes(b"x")
        secret.chmod(0)
        with as_unprivileged():
            refusal = _refusal(secret)
    assert refusal == f"{secret}: cannot read report: Permission denied"
