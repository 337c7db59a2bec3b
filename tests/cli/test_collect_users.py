"""What ``collect`` says of the Android users a ``pm list packages -U`` capture lists: it cannot tell a
work profile from another user (live adb can), so the note asks for ``--work-profile``, and names the
users as the capture lists them."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import invoke

FACTS = ["--device-id", "p5", "--ownership", "personal", "--no-mdm-enrolled", "--org", "eu-council"]


def test_a_capture_of_another_user_only_is_not_said_to_list_user_0_too(tmp_path: Path) -> None:
    """``pm list packages -U --user 10``: the note named user 10 "besides user 0", which it does not list."""
    capture = tmp_path / "pm.txt"
    capture.write_text("package:com.example.corpmail uid:1010300\npackage:com.android.chrome uid:1010120\n")
    result = invoke(["collect", "--source", "android-pm", "--from", str(capture), "--user", "10", *FACTS])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        "pyagent: note: the capture lists Android user 10, not the main user 0; if one is a work profile, "
        "say so with --work-profile (a capture cannot tell; live adb does)\n"
        "pyagent: collected 2 apps from android-pm (android)\n"
    )


def test_a_capture_of_the_main_user_alone_says_nothing(tmp_path: Path) -> None:
    capture = tmp_path / "pm.txt"
    capture.write_text("package:com.android.chrome uid:10120\n")
    result = invoke(["collect", "--source", "android-pm", "--from", str(capture), *FACTS])
    assert (result.exit_code, result.stderr) == (0, "pyagent: collected 1 app from android-pm (android)\n")
