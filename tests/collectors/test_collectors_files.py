"""Reading input files: what is refused, and that nothing can hang the reader."""

from __future__ import annotations

import codecs
import os
import re
import time
from pathlib import Path

import pytest

from pyagent.collectors.base import CollectorInputError
from pyagent.collectors.files import (
    MAX_INPUT_BYTES,
    decode_text,
    load_json,
    read_input_bytes,
)
from pyagent.errors import InvalidInputError
from tests.helpers.unprivileged import as_unprivileged, shared_dir


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_bytes(b"package:com.x\n")
    assert read_input_bytes(path) == b"package:com.x\n"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CollectorInputError, match=r"capture\.txt: input not found$") as info:
        read_input_bytes(tmp_path / "capture.txt")
    assert info.value.exit_code == 2
    assert isinstance(info.value, InvalidInputError)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CollectorInputError, match=r"empty.txt: input is empty$"):
        read_input_bytes(path)


def test_whitespace_only_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_bytes(b"\n \n\t\n")
    with pytest.raises(CollectorInputError, match=r"no content"):
        decode_text(read_input_bytes(path), where=str(path))


def test_file_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "enormous.json"
    with path.open("wb") as handle:  # sparse: no disk space used
        handle.truncate(MAX_INPUT_BYTES + 1)
    with pytest.raises(CollectorInputError, match=r"enormous.json: input is larger than 64 MiB$"):
        read_input_bytes(path)


def test_small_cap(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 11)
    with pytest.raises(CollectorInputError, match=r"f.txt: input is larger than 10 bytes$"):
        read_input_bytes(path, max_bytes=10)
    assert read_input_bytes(path, max_bytes=11) == b"x" * 11


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(CollectorInputError, match=r"pipe: input is a pipe, not a regular file$"):
        read_input_bytes(fifo)
    assert time.monotonic() - start < 2


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CollectorInputError, match=r"is a directory"):
        read_input_bytes(tmp_path)


def test_device_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"/dev/zero: input is a device, not a regular file$"):
        read_input_bytes("/dev/zero")


def test_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("package:com.x\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert read_input_bytes(link) == b"package:com.x\n"


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "gone.txt")
    dangling = r"link.txt: input not found \(a symbolic link to a missing file\)$"
    with pytest.raises(CollectorInputError, match=dangling):
        read_input_bytes(link)


def test_symlink_to_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.txt"
    link.symlink_to(fifo)
    with pytest.raises(CollectorInputError, match=r"link.txt: input is a pipe, not a regular file$"):
        read_input_bytes(link)


def test_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to("/dev/urandom")
    with pytest.raises(CollectorInputError, match=r"link.txt: input is a device, not a regular file$"):
        read_input_bytes(link)


def test_unreadable_file() -> None:
    with shared_dir() as directory:
        path = directory / "secret.txt"
        path.write_text("x")
        path.chmod(0)
        refusal = f"^{re.escape(str(path))}: cannot read input: Permission denied$"
        with as_unprivileged(), pytest.raises(CollectorInputError, match=refusal):
            read_input_bytes(path)


def test_binary_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"^f: binary data \(NUL byte at offset 3\), not text$"):
        decode_text(b"abc\x00def", where="f")


def test_non_utf8_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"not UTF-8 text"):
        decode_text("package:com.café\n".encode("latin-1"), where="f")


@pytest.mark.parametrize(("bom", "offset"), [(b"", 39), (codecs.BOM_UTF8, 42)])
def test_non_utf8_is_named_by_its_line_and_offset(bom: bytes, offset: int) -> None:
    """A Latin-1 capture: the line to look at, and the byte's offset in the file (a BOM counted)."""
    data = bom + "package:a.b\npackage:c.d\npackage:com.café\n".encode("latin-1")
    with pytest.raises(CollectorInputError) as refused:
        decode_text(data, where="f")
    assert str(refused.value) == (
        f"f:3: not UTF-8 text (byte 0xe9 at offset {offset}); binary or wrong encoding"
    )


def test_utf8_bom_is_dropped() -> None:
    assert decode_text(codecs.BOM_UTF8 + b'{"value": []}', where="f") == '{"value": []}'


def test_utf16_with_bom_is_decoded() -> None:
    # Windows PowerShell 5.1's Out-File writes UTF-16 LE with a byte order mark.
    data = codecs.BOM_UTF16_LE + '{"value": []}\r\n'.encode("utf-16-le")
    assert decode_text(data, where="f") == '{"value": []}\r\n'


def test_broken_utf16_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"not valid UTF-16"):
        decode_text(codecs.BOM_UTF16_LE + b"\x00\xd8", where="f")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"value": [', "not valid JSON .*truncated"),
        ("[NaN]", r"^f: not valid JSON: \$\[0\]: NaN is not a JSON number$"),
        ("[Infinity]", r"^f: not valid JSON: \$\[0\]: Infinity is not a JSON number$"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("1" * 5000, "not valid JSON"),
    ],
)
def test_load_json_refusals(text: str, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        load_json(text, where="f")


def test_messages_stay_on_one_line_whatever_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(CollectorInputError) as info:
        read_input_bytes(tmp_path / "evil\nname.txt")
    assert "\n" not in str(info.value) and "evil\\nname.txt: input not found" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"name": "a"},\n {"name": "b", "path": "/B", "name": "c"}]',
         "f: not valid JSON: $[1].name: duplicate key 'name'"),
        ('{"value": [{"id": 1}, {"id": 2, "size": NaN}]}',
         "f: not valid JSON: $.value[1].size: NaN is not a JSON number"),
        ('[{"a": {"b": -Infinity}}]', "f: not valid JSON: $[0].a.b: -Infinity is not a JSON number"),
        ('[{"a": NaN}, {"b": Infinity}]', "f: not valid JSON: $[0].a: NaN is not a JSON number"),  # the first
        ('[{"name": "a", "name": "b"}, oops', "f: not valid JSON at line 1, column 30: Expecting value"),
        ('[{"a": 1, "a": 2}, ' + "[" * 100_000 + "]" * 100_000 + "]", "f: JSON nested too deeply"),
        ('[NaN, ' + "[" * 100_000 + "]" * 100_000 + "]", "f: JSON nested too deeply"),
    ],
)  # fmt: skip
def test_a_repeated_key_or_a_constant_is_named_by_its_place(text: str, message: str) -> None:
    """Said without the row ("not valid JSON: duplicate key 'name'"): in a 10,000-row export, no one
    could find it. A document that is no JSON at all, or nested too deeply, is said as such, whatever
    else is wrong in it (a second parse to find the place had let its errors through: exit 3)."""
    with pytest.raises(CollectorInputError) as refused:
        load_json(text, where="f")
    assert str(refused.value) == message
