"""Reading configuration files and secrets, bounded: TOML (``agent.toml``) or YAML (OPA's ``config.yaml``).

The format follows the file name: ``.yaml``, ``.yml`` and ``.json`` are read as YAML (JSON is YAML), any
other name as TOML. A secret (a bearer token, the decision log's HMAC key) is never a value in the
config: it is the first line of a file of its own, named by a ``*_path`` or ``*_file`` key.

As OPA does with its config file, ``${NAME}`` is replaced by the environment variable ``NAME`` in the
file's text before it is parsed (in either format); a variable that is not set is left as written, and
said on stderr. YAML is read as OPA reads it (:mod:`pyagent.yamlcore`: ``yes`` and ``2023-01-01`` are
strings), a key given twice keeps its last value, and only the first document of the file counts.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.termsafe import printable
from pyagent.userfile import read_text

MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024
YAML_SUFFIXES = (".yaml", ".yml", ".json")


def default_config_path() -> Path:
    """``PYAGENT_CONFIG`` when set, else this OS's documented location."""
    env = os.environ.get("PYAGENT_CONFIG")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "pyagent" / "agent.toml"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/pyagent/agent.toml")
    return Path("/etc/pyagent/agent.toml")


#: ``${NAME}`` as OPA finds it (``(?U:\${.*})``): the shortest run up to a ``}``, on one line.
_ENV_REFERENCE = re.compile(r"\$\{(.*?)\}")


def substitute_environment(text: str, path: Path) -> str:
    """``text`` with each ``${NAME}`` replaced by the variable's value, as OPA's config loader does: an
    unset variable is kept as written (and said on stderr), a variable set to "" gives ""."""
    unset: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name:
            return ""
        found = os.environ.get(name)
        if found is None:
            unset.append(match.group(0))
            return match.group(0)
        return found

    out = _ENV_REFERENCE.sub(value, text)
    for reference in dict.fromkeys(unset):
        print(
            f"pyagent: note: {path}: {printable(reference[:80])} is not set in the environment; kept as "
            "written (as OPA does)",
            file=sys.stderr,
        )
    return out


def read_document(path: Path) -> dict[str, Any]:
    """The parsed config at ``path`` (a regular file of at most 1 MiB), as a dict of tables."""
    text = read_text(path, what="config", limit=MAX_CONFIG_BYTES).removeprefix("\ufeff")  # (Notepad's BOM)
    text = substitute_environment(text, path)
    document = _yaml(text, path) if path.suffix.lower() in YAML_SUFFIXES else _toml(text, path)
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else "a single value"
        raise InvalidInputError(f"{path}: config must be a mapping of tables, not {kind}")
    return document


def _toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path}: config is not valid TOML: {err}") from err
    except RecursionError:
        raise InvalidInputError(f"{path}: config is nested too deeply") from None


@functools.cache
def _loader_class() -> Any:
    """PyYAML's safe loader resolving as OPA does (:mod:`pyagent.yamlcore`), merge keys included."""
    import yaml  # only for OPA-style config files

    from pyagent.yamlcore import CoreComposer

    class Loader(CoreComposer, yaml.constructor.SafeConstructor):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            CoreComposer.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            """A key given twice is refused, as OPA's YAML reader refuses it (the second would win)."""
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key!r} given twice (first at line {seen[key]})",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
    return Loader


def _yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        documents = list(yaml.load_all(text, Loader=_loader_class()))  # all parsed; the first counts
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = err.problem or err.context
        raise InvalidInputError(f"{path}{at}: config is not valid YAML: {problem}") from err
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise InvalidInputError(f"{path}: config is not valid YAML: {first}") from err
    except RecursionError:
        raise InvalidInputError(f"{path}: config is nested too deeply") from None
    return {} if not documents or documents[0] is None else documents[0]


def read_secret(path: Path, *, what: str, header: bool = False) -> str:
    """The first line of a token or key file, stripped; empty or unreadable is a usage error. A pipe
    is a secret too (``<(pass show pyagent/token)``). A regular file open to every user (other users may
    read or write it; a group, as in the documented ``0640 root:pyagent``, is the owner's choice) is
    said on stderr, once per file and mode: the secret is still used, as refusing it would stop an
    agent that a permission change elsewhere exposed. A control character is refused; ``header``: the
    secret is sent in an HTTP header (a bearer token), so only visible ASCII is taken (a server would
    answer 400, which would read as a refused event)."""
    text = read_text(path, what=what, limit=MAX_SECRET_BYTES, regular_only=False).strip()
    if not text or "\n" in text:
        raise InvalidInputError(f"{path}: {what} must be one non-empty line")
    if header and not all("!" <= c <= "~" for c in text):
        raise InvalidInputError(f"{path}: {what} must be visible ASCII (it is sent in an HTTP header)")
    if any(c < " " or c == "\x7f" for c in text):
        raise InvalidInputError(f"{path}: {what} holds a control character")
    _note_exposed(path, what)
    return text


#: The (device, inode, mode) of the files already said, so that a secret read on every request, or
#: named two ways (a relative and an absolute path, a link), is said once.
_EXPOSED_SAID: set[tuple[int, int, int]] = set()


def _note_exposed(path: Path, what: str) -> None:
    if os.name != "posix":
        return  # Windows ACLs are not mode bits
    try:
        info = os.stat(path)
    except OSError:
        return  # it was read a moment ago: a race, and the next read says it
    mode = stat.S_IMODE(info.st_mode)
    said = (info.st_dev, info.st_ino, mode)
    if not stat.S_ISREG(info.st_mode) or not mode & 0o006 or said in _EXPOSED_SAID:
        return
    _EXPOSED_SAID.add(said)
    print(
        f"pyagent: warning: {printable(str(path))}: {what} is open to every user on this machine (mode "
        f"{mode:04o}); take the other users' access away (chmod o-rwx)",
        file=sys.stderr,
    )
