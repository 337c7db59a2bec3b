"""The CSV exports' cells: what a spreadsheet would run as a formula is written as text (``'`` first),
also behind leading white space or in full-width form (an audit found ``" =1+1"``, ``"\\n=1+1"`` and
``"\\uff1d1+1"`` written as they came); everything else as it is."""

from __future__ import annotations

import pytest

from pyagent.server.exports import DEVICE_COLUMNS, cell, rows_csv


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        " =1+1",
        "\n=1+1",
        "  @x",
        "\uff1d1+1",
        "\uff0b1",
        "\uff20x",
        "\uff0d1",
    ],
)
def test_a_formula_is_written_as_text(text: str) -> None:
    assert cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "written"),
    [("fr-brussels-0042", "fr-brussels-0042"), ("a=b", "a=b"), (" x", " x"), (None, ""), (True, "true"),
     (["tiktok", "douyin"], "tiktok douyin"), (3, "3")],
)  # fmt: skip
def test_other_cells_are_written_as_they_are(value: object, written: str) -> None:
    assert cell(value) == written


def test_rows_are_crlf_lines_with_the_header_first() -> None:
    row = ["=x", "eu-commission", "android", True, "compliant", False, [], None, "d-1", None]
    assert rows_csv(DEVICE_COLUMNS, [row]) == (
        ",".join(DEVICE_COLUMNS) + "\r\n'=x,eu-commission,android,true,compliant,false,,,d-1,\r\n"
    )
