"""Android: ``adb shell pm list packages`` text, from a file or live over ``adb``.

Line format, as AOSP's ``PackageManagerShellCommand.runListPackages`` prints it (one package a line)::

    package:[SOURCE_DIR=]NAME[ versionCode:N][  installer=INSTALLER][ uid:UID[,UID...]]

- ``-f`` adds the APK path and ``=``; the path may itself contain ``=`` (``/data/app/~~abc==/...``), so the
  package name is what follows the *last* ``=``;
- ``--show-versioncode`` adds `` versionCode:N`` (the integer versionCode, reported as the app's version);
- ``-i`` adds two spaces and ``installer=``; the installer is a package name or ``null``;
- ``-U`` adds `` uid:N``. Android 13 and later list every user by default and print the uid of each user
  the package is installed for, comma-separated. A uid encodes its user: ``user = uid // 100000``;
- ``-u`` (uninstalled too), ``--user N``, ``-3``/``-s``/``-d``/``-e`` change which packages are listed,
  not the line format.

The suffixes are read whatever their order (a capture that went through another tool may have them
reordered), each at most once. Every non-blank line must be a package line: anything else (an ``Error:``
from pm, a garbled line) is a :class:`CollectorInputError` naming the file and line. Blank lines are
ignored, and so are the dynamic linker's warnings (``WARNING: linker: ...``, which bionic prints on some
devices before pm's own output, and ``adb shell`` merges into it): each is noted on stderr with its
line, and counted in the report (``device.extra.linker_warnings_skipped``). pm ends every line with a
line break, so live output whose last line has none was cut short and is refused: its last package name
could be cut (``com.zhiliaoapp.musi``) and so hide a banned app. A file's last line may lack one (saved
by an editor or written by hand): it is read, with a note on stderr saying so.

Live mode runs ``adb [-s SERIAL] shell pm list users``, ``getprop ro.build.version.release`` and, for each
user, ``pm list packages -f -i -U --show-versioncode --user N``. A user whose flags have
``FLAG_MANAGED_PROFILE`` (0x20, ``android.content.pm.UserInfo``) is a work profile.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pyagent.collectors.base import (
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    App,
    Collector,
    CollectorError,
    CollectorInputError,
    Inventory,
    check_text,
    clip,
)
from pyagent.collectors.files import decode_text, input_name, read_input_bytes
from pyagent.collectors.run import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, run_tool

SOURCE = "android-pm"
PER_USER_RANGE = 100_000
"""``android.os.UserHandle.PER_USER_RANGE``: uids of user N are N * 100000 + app id."""
#: What bionic's dynamic linker starts its warnings with (``adb shell`` merges them into pm's output).
LINKER_WARNING = "WARNING: linker: "
FLAG_MANAGED_PROFILE = 0x20
ADB_ENV = (
    "HOME",
    "TMPDIR",
    "ANDROID_SERIAL",
    "ANDROID_USER_HOME",
    "ANDROID_SDK_HOME",
    "ANDROID_ADB_SERVER_PORT",
    "ANDROID_ADB_SERVER_ADDRESS",
    "ADB_SERVER_SOCKET",
    "ADB_VENDOR_KEYS",
)

PM_LIST_PACKAGES = ("pm", "list", "packages", "-f", "-i", "-U", "--show-versioncode")
"""The live command; ``--user N`` is added for each user."""

#: What follows the package on a line, in any order (AOSP prints them in this one), each at most once.
_SUFFIXES = {
    "version": re.compile(r"versionCode:(?P<value>[0-9]+)"),
    "installer": re.compile(r"installer=(?P<value>\S+)"),
    "uids": re.compile(r"uid:(?P<value>[0-9]+(?:,[0-9]+)*)"),
}
#: The longest line a package can take: ``package:``, an APK path, ``=``, a package name, and room for the
#: suffixes (a uid for each of many users). Longer lines are refused before they are parsed.
MAX_LINE_CHARS = len("package:") + MAX_PATH_CHARS + 1 + MAX_ID_CHARS + 4096
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_USER = re.compile(r"UserInfo\{(?P<id>[0-9]+):(?P<name>.*):(?P<flags>[0-9a-fA-F]+)\}(?P<running> running)?")


def _lines(text: str) -> list[str]:
    # adb shell on old devices (no shell protocol) ends lines with CR LF; split on LF only and strip CR,
    # so a stray form feed or similar never silently merges or splits lines.
    return [line.rstrip("\r") for line in text.split("\n")]


def _split_line(line: str) -> tuple[str, dict[str, str | None]] | None:
    """``package:BODY`` and the suffixes after it (``versionCode:``, ``installer=``, ``uid:``), taken
    from the end, whatever their order; None for a line that is not one."""
    text = line.strip()
    if not text.startswith("package:"):
        return None
    words = text.removeprefix("package:").split()
    found: dict[str, str | None] = dict.fromkeys(_SUFFIXES)
    while len(words) > 1:
        last = words[-1]
        free = (
            name for name, pattern in _SUFFIXES.items() if found[name] is None and pattern.fullmatch(last)
        )
        matched = next(free, None)
        if matched is None:
            break
        found[matched] = _SUFFIXES[matched].fullmatch(words.pop())["value"]  # type: ignore[index]
    if not words:
        return None
    return " ".join(words), found


def parse_package_line(line: str, *, where: str, user: int | None = None) -> list[App]:
    """The app(s) on one ``pm list packages`` line: one per uid when ``-U`` lists several users."""
    if len(line) > MAX_LINE_CHARS:  # (before any parsing: a line of megabytes must cost nothing)
        raise CollectorInputError(
            f"{where}: a line of {len(line)} characters, longer than any package line "
            f"({MAX_LINE_CHARS} at most): {clip(line)}"
        )
    split = _split_line(line)
    if split is None:
        raise CollectorInputError(f"{where}: not a `pm list packages` line: {clip(line)}")
    body, match = split
    path: str | None = None
    name = body
    if "=" in body and " " not in body:
        path, name = body.rsplit("=", 1)
        if not path:
            raise CollectorInputError(f"{where}: empty APK path before '=': {clip(line)}")
        if not path.startswith("/"):
            # not -f's path: another tool's field (``launcher=...``) or a suffix given twice; reading
            # what follows its '=' as the package would report some other app instead of this one
            raise CollectorInputError(f"{where}: not an APK path (pm prints absolute ones): {clip(path)}")
        path = check_text(path, what="APK path", where=where, limit=MAX_PATH_CHARS)
    if len(name) > MAX_ID_CHARS or not _PACKAGE_NAME.fullmatch(name):
        hint = (
            " (pm prints only versionCode:, installer= and uid: after it, each once)"
            if " " in name
            else f" (it is {len(name)} characters; an id is at most {MAX_ID_CHARS})"
            if len(name) > MAX_ID_CHARS
            else ""
        )
        raise CollectorInputError(f"{where}: not a package name: {clip(name)}{hint}")
    installer = match["installer"]
    if installer == "null":
        installer = None
    elif installer is not None:
        installer = check_text(installer, what="installer", where=where)
    version = match["version"]
    if version is not None and len(version) > 40:
        raise CollectorInputError(f"{where}: versionCode too long: {clip(version)}")
    users: list[int | None] = [user]
    if match["uids"] is not None:
        uids = match["uids"].split(",")
        if any(len(uid) > 12 for uid in uids):
            raise CollectorInputError(f"{where}: uid out of range: {clip(match['uids'])}")
        users = list(dict.fromkeys(int(uid) // PER_USER_RANGE for uid in uids))
        if user is not None and users != [user]:
            raise CollectorInputError(
                f"{where}: uid {match['uids']} is not in user {user}, the user the list was taken for"
            )
    return [
        App(id=name, version=version, source=SOURCE, installer=installer, user=owner, path=path)
        for owner in users
    ]


def parse_pm_list_packages(
    text: str,
    *,
    where: str,
    user: int | None = None,
    whole_lines: bool = False,
    skipped: list[int] | None = None,
) -> list[App]:
    """The apps in ``pm list packages`` output (any of its flags). ``where`` names the input in errors.

    ``user`` is the Android user the list was taken for (``--user N``), when known; a ``uid:`` on a line
    tells the user by itself. ``whole_lines``: refuse text whose last line has no line break (live
    output, which pm ends with one); a file's last line may lack it (saved or written by hand).
    ``skipped`` gets the numbers of the linker warning lines passed over.
    """
    lines = _lines(text)
    if whole_lines and lines[-1].strip():
        # pm ends every line with a line break: text that stops mid-line was cut, and its last package
        # name or version may be cut short too (``com.zhiliaoapp.musi``).
        raise CollectorInputError(
            f"{where}:{len(lines)}: the last line has no line break, so the capture looks truncated "
            "(if it was edited by hand, end it with a newline)"
        )
    apps: list[App] = []
    for number, line in enumerate(lines, start=1):
        if line.startswith(LINKER_WARNING) and "package:" not in line:  # (pm's output run into it: read)
            print(
                f"pyagent: note: {where}:{number}: skipped the linker's warning: {clip(line)}",
                file=sys.stderr,
            )
            if skipped is not None:
                skipped.append(number)
        elif line.strip():
            apps.extend(parse_package_line(line, where=f"{where}:{number}", user=user))
    if not apps:
        raise CollectorInputError(f"{where}: no `package:` lines")
    return apps


@dataclass(frozen=True)
class AndroidUser:
    """One line of ``pm list users``. The user's name is personal data and is not kept."""

    id: int
    flags: int
    running: bool

    @property
    def managed_profile(self) -> bool:
        return bool(self.flags & FLAG_MANAGED_PROFILE)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "flags": f"0x{self.flags:x}",
            "managed_profile": self.managed_profile,
            "running": self.running,
        }


def parse_pm_list_users(text: str, *, where: str) -> list[AndroidUser]:
    """The users in ``pm list users`` output: ``Users:`` then ``\\tUserInfo{ID:NAME:HEXFLAGS}[ running]``."""
    users: list[AndroidUser] = []
    lines = [(n, line) for n, line in enumerate(_lines(text), start=1) if line.strip()]
    if not lines or lines[0][1].strip() != "Users:":
        raise CollectorInputError(f"{where}: not `pm list users` output (no 'Users:' header)")
    for number, line in lines[1:]:
        match = _USER.fullmatch(line.strip())
        if match is None or len(match["id"]) > 9 or len(match["flags"]) > 8:
            raise CollectorInputError(f"{where}:{number}: not a `pm list users` line: {clip(line)}")
        users.append(AndroidUser(int(match["id"]), int(match["flags"], 16), match["running"] is not None))
    if not users:
        raise CollectorInputError(f"{where}: no users listed")
    return users


class AndroidPmCollector(Collector):
    """``pm list packages`` from a captured file (``from_file``) or live over ``adb``.

    Options: ``from_file`` (a capture; without it the device is read live), ``user`` (the Android user a
    capture was taken for, or the only user to read live), ``serial`` (``adb -s``), ``adb`` (the adb
    program), ``timeout`` (seconds per adb command), ``max_output`` (bytes per adb command).
    """

    name = "android-pm"

    def __init__(
        self,
        *,
        from_file: str | os.PathLike[str] | None = None,
        user: int | None = None,
        serial: str | None = None,
        adb: str = "adb",
        timeout: float = DEFAULT_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if user is not None and (isinstance(user, bool) or not isinstance(user, int) or user < 0):
            raise CollectorInputError(f"android-pm: user must be a user id (0, 10, ...), not {user!r}")
        if from_file is not None and serial is not None:
            raise CollectorInputError("android-pm: a serial is for live mode; it cannot go with a file")
        self.from_file = Path(from_file) if from_file is not None else None
        self.user = user
        self.serial = serial
        self.adb = adb
        self.timeout = timeout
        self.max_output = max_output

    def collect(self) -> Inventory:
        if self.from_file is not None:
            return self._from_file(self.from_file)
        return self._live()

    def _from_file(self, path: Path) -> Inventory:
        where = input_name(path)
        text = decode_text(read_input_bytes(path), where=where)
        skipped: list[int] = []
        apps = parse_pm_list_packages(text, where=where, user=self.user, skipped=skipped)
        facts: dict[str, object] = {"input": "file"}
        if skipped:
            facts["linker_warnings_skipped"] = len(skipped)
        last = text[text.rfind("\n") + 1 :].rstrip("\r")  # (no second split of the whole capture)
        if last.strip():  # said and kept in the report (device.extra), not refused: hand-saved files end so
            print(
                f"pyagent: note: {where}:{text.count(chr(10)) + 1}: the last line has no line break; read as "
                f"whole ({clip(last)}), but a capture cut there would have cut its package name",
                file=sys.stderr,
            )
            facts["input_last_line_unterminated"] = True
        users = sorted({app.user for app in apps if app.user is not None})
        if users:
            facts["android_users_seen"] = users
        return self.inventory("android", apps, facts=facts)

    def _adb(self, *args: str) -> str:
        argv = [self.adb, *(["-s", self.serial] if self.serial else []), "shell", *args]
        out = run_tool(
            argv, timeout=self.timeout, max_output=self.max_output, env_passthrough=ADB_ENV, tool="adb"
        )
        try:
            return decode_text(out, where=f"adb shell {' '.join(args)}")
        except CollectorInputError as exc:
            raise CollectorError(f"adb: unexpected output: {exc}") from exc

    def _live(self) -> Inventory:
        try:
            users = parse_pm_list_users(self._adb("pm", "list", "users"), where="adb shell pm list users")
        except CollectorInputError as exc:
            raise CollectorError(f"adb: unexpected output: {exc}") from exc
        release = self._adb_optional("getprop", "ro.build.version.release")
        wanted = [u for u in users if self.user is None or u.id == self.user]
        if not wanted:
            known = ", ".join(str(u.id) for u in users)
            raise CollectorInputError(f"android-pm: the device has no user {self.user} (users: {known})")
        apps: list[App] = []
        skipped: list[int] = []
        for account in wanted:
            args = (*PM_LIST_PACKAGES, "--user", str(account.id))
            where = f"adb shell {' '.join(args)}"
            try:
                output = self._adb(*args)
                apps.extend(
                    parse_pm_list_packages(
                        output, where=where, user=account.id, whole_lines=True, skipped=skipped
                    )
                )
            except CollectorInputError as exc:
                raise CollectorError(f"adb: unexpected output: {exc}") from exc
        facts: dict[str, object] = {"input": "adb", "android_users": [u.to_json() for u in users]}
        if skipped:
            facts["linker_warnings_skipped"] = len(skipped)
        if self.serial:
            facts["adb_serial"] = self.serial
        work_profile = any(u.managed_profile for u in users)
        return self.inventory("android", apps, os_version=release, work_profile=work_profile, facts=facts)

    def _adb_optional(self, *args: str) -> str | None:
        """One line of output (a property), or None when the device prints nothing."""
        out = run_tool(
            [self.adb, *(["-s", self.serial] if self.serial else []), "shell", *args],
            timeout=self.timeout,
            max_output=4096,
            env_passthrough=ADB_ENV,
            tool="adb",
        )
        value = out.decode("utf-8", "replace").strip()
        if not value:
            return None
        if "\n" in value or len(value) > 64:
            raise CollectorError(f"adb: unexpected output from {' '.join(args)}: {clip(value)}")
        return value
