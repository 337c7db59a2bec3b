"""osquery documents read row by row: rows counted as a reader counts them (from 1), each column's
type, the table told by the columns, and mixed tables refused."""

from __future__ import annotations

import json

import pytest

from pyagent.collectors import CollectorInputError
from pyagent.collectors.osquery import parse_osquery_json
from tests.collectors.conftest import FIXTURES


def test_mixed_tables_are_refused() -> None:
    mac = json.loads((FIXTURES / "osquery" / "macos-apps.json").read_text())
    win = json.loads((FIXTURES / "osquery" / "windows-programs-osquery-5.16.json").read_text())
    with pytest.raises(
        CollectorInputError, match=r"f: row 3 is from another table than the rest; mixed tables"
    ):
        parse_osquery_json(json.dumps(mac[:2] + win[:1]), where="f")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"name": "x"}', "expected a JSON array of rows"),
        ('["x"]', "row 1 is not a JSON object"),
        ('[{"name": "a", "release": "1"}, 7]', "row 2 is not a JSON object"),
        (
            '[{"name": "a", "version": null, "release": "1"}]',
            r"row 1 column 'version' is null; osquery prints strings \(a NULL as an empty one\)",
        ),
        ('[{"name": ["a"], "release": "1"}]', "column 'name' is an array;"),
        ('[{"name": {"a": 1}, "release": "1"}]', "column 'name' is an object;"),
        ('[{"name": true, "release": "1"}]', "column 'name' is true or false;"),
        ('[{"pid": "1", "cmdline": "/sbin/init"}]', "columns 'cmdline, pid' are not columns of apps"),
        ('[{"name": "x"}]', "do not tell which"),
        ('[{"name": "TikTok", "version": "1.0"}]', "do not tell which"),  # programs has both too
        (
            '[{"name": "a", "publisher": "p", "maintainer": "m"}]',
            "those of programs and deb_packages; one table",
        ),
        (
            '[{"name": "", "release": "1", "version": "1"}]',
            "none of its 1 rows is installed software with an",
        ),
        ('[{"bundle_identifier": "", "name": "", "display_name": ""}]', "none of its 1 rows is installed"),
        ('[{"name": "a\\u0000b", "release": "1"}]', "name contains a control character"),
        ('[{"name": "com.zhiliaoapp.musically\\t", "release": "1"}]', "id contains a control character"),
        ('[\n  {"name":"bash","release":"1"', "not valid JSON"),
    ],
)
def test_bad_documents(doc: str, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        parse_osquery_json(doc, where="f")


def test_numbers_are_accepted_as_typed_output() -> None:
    _, [app], _ = parse_osquery_json(
        '[{"name": "bash", "version": "5", "release": "1", "epoch": 2}]', where="f"
    )
    assert app.version == "2:5-1"
