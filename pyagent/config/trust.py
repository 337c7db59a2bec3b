"""What a root agent trusts must be root's: its config, the keys it verifies bundles with, its tokens,
its CA certificates and its decision log's key. A local user who can write one of them (a config or
key made writable by group or others, or kept in a directory they can write) decides what policy the
agent runs, where its results go and which facts it states: a local-attacker audit made a root agent
report a device as personal and unenrolled (so compliant) by editing a world-writable agent.toml.

As root (only: a user's own agent trusts the user's files) each such file, and the directory it is in,
must belong to root and be writable by no one else; otherwise the agent refuses to start (exit 2),
naming the file, as ``sshd`` does with its ``StrictModes``. The state directory has its own check
(:mod:`pyagent.config.statedir`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pyagent.config.agent import AgentConfig, agent_settings
from pyagent.engines.base import EngineSettings
from pyagent.errors import InvalidInputError
from pyagent.termsafe import printable


def trusted_files(config: AgentConfig, engine: EngineSettings | None = None) -> Iterator[tuple[Path, str]]:
    """The files a running agent trusts, each with what it is (``what``, for the message)."""
    if config.source is not None:
        yield Path(config.source), "agent config"
    for opa_key, what in (
        ("token_file", "OPA token (opa.token_file)"),
        ("ca", "OPA CA certificate (opa.ca)"),
    ):
        if isinstance(config.opa.get(opa_key), str):
            yield Path(config.opa[opa_key]), what
    for name, service in config.tables.services.items():
        if service.token_path is not None:
            yield service.token_path, f"token of service {name}"
        if service.ca_cert is not None:
            yield service.ca_cert, f"CA certificate of service {name}"
    for name, key in config.tables.keys.items():
        if key.key_path is not None:
            yield key.key_path, f"bundle verification key {name}"
    hmac_key = agent_settings(config).hmac_key_file
    if hmac_key is not None:
        yield hmac_key, "decision log key (agent.hmac_key_file)"
    if engine is not None:  # (given on the command line or in the environment)
        for value, what in (
            (engine.opa_ca, "OPA CA certificate (--opa-ca)"),
            (engine.bundle, "policy bundle (--bundle)"),
            (engine.verification_key, "bundle verification key (--verification-key)"),
        ):
            if value:
                yield Path(value), what


def check_trusted_files(config: AgentConfig, engine: EngineSettings | None = None) -> None:
    """As root, refuse a trusted file, or a directory on its way (its link's and its target's), that
    another user owns or can write. A file not there yet is checked by its directories: whoever can
    write them could put one there."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    for path, what in trusted_files(config, engine):
        literal = Path(os.path.abspath(path))
        try:
            _check(literal, os.lstat(literal), what)
            if literal.is_symlink():
                _check(literal, os.stat(literal), what)
        except FileNotFoundError:
            pass
        parents = {literal.parent, literal.resolve().parent}
        for directory in dict.fromkeys([*literal.parents, *literal.resolve().parents]):
            try:
                info = os.stat(directory)
            except OSError:
                continue  # (a directory not there: nothing in it to trust yet)
            # its own directory must be root's too; the ones above it writable by no one else (a
            # checkout may sit in another user's home)
            _check(directory, info, f"directory of the {what}", owner=directory in parents)


def _check(path: Path, info: os.stat_result, what: str, *, owner: bool = True) -> None:
    shown = printable(str(path))
    if stat.S_ISLNK(info.st_mode):
        if info.st_uid != 0:
            raise InvalidInputError(
                f"{shown}: the {what} is a symbolic link owned by uid {info.st_uid}, and this agent runs "
                "as root: whoever owns it decides what the agent trusts"
            )
        return  # (a link's own mode means nothing: its target is checked)
    if owner and info.st_uid != 0:
        raise InvalidInputError(
            f"{shown}: the {what} belongs to uid {info.st_uid}, and this agent runs as root: whoever owns "
            f"it decides what the agent trusts; chown root {shown}"
        )
    writable = stat.S_IWGRP | stat.S_IWOTH
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & writable and not sticky:
        raise InvalidInputError(
            f"{shown}: the {what} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}), "
            f"and this agent runs as root; chmod go-w {shown}"
        )
