"""``pyagent server`` commands through click's runner: tokens, publish (signed and not), migrate."""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from pyagent.bundles.build import build_signed_bundle
from pyagent.cli import cli
from pyagent.server.auth import token_hash
from pyagent.server.store import open_store
from pyagent.server.store.base import Grant
from pyagent.server.store.engine import open_engine
from tests.helpers.opa_server import POLICY_DIRS


@dataclass(frozen=True)
class Bundles:
    signer_public: Path
    rego_10: Path
    wasm_10: Path
    rego_11: Path
    wasm_11_other_revision: Path
    wasm_11_serial_12: Path
    forged_12: Path
    unsigned: Path


def _key(path: Path) -> Path:
    key = rsa.generate_private_key(65537, 2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.with_suffix(".pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, opa_bin: str) -> Bundles:
    out = tmp_path_factory.mktemp("published")
    signer, attacker = _key(out / "signer.pem"), _key(out / "attacker.pem")

    def signed(name: str, key: Path, revision: str, serial: int, target: str) -> Path:
        path = out / name
        build_signed_bundle(
            POLICY_DIRS, path, signing_key=key, revision=revision, serial=serial, target=target
        )
        return path

    unsigned = out / "unsigned.tar.gz"
    subprocess.run(
        [opa_bin, "build", "-t", "rego", "--revision", "u1", "--ignore", "*_test.rego", "-o", str(unsigned),
         *map(str, POLICY_DIRS)],
        check=True, capture_output=True,
    )  # fmt: skip
    return Bundles(
        signer_public=signer.with_suffix(".pub"),
        rego_10=signed("rego-10.tar.gz", signer, "r10", 10, "rego"),
        wasm_10=signed("wasm-10.tar.gz", signer, "r10", 10, "wasm"),
        rego_11=signed("rego-11.tar.gz", signer, "r11", 11, "rego"),
        wasm_11_other_revision=signed("wasm-11.tar.gz", signer, "r11-other", 11, "wasm"),
        wasm_11_serial_12=signed("wasm-11-12.tar.gz", signer, "r11", 12, "wasm"),
        forged_12=signed("forged-12.tar.gz", attacker, "r12", 12, "rego"),
        unsigned=unsigned,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'server.db'}"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["server", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_token_add_prints_the_secret_once_and_stores_its_hash(db: str) -> None:
    code, out, err = run("token", "add", "fleet-agents", "--role", "agent", "--db", db)
    assert code == 0
    secret = out.strip()
    assert out == secret + "\n" and secret.startswith("pya_") and len(secret) > 40
    assert err == "token fleet-agents (agent) added; it is shown only now\n"
    assert open_store(db).grant_for(token_hash(secret)) == Grant("agent", None)
    code, out, _ = run("token", "list", "--db", db)
    assert code == 0 and out.startswith("fleet-agents\tagent\t") and out.endswith("\t*\n")
    assert secret not in out
    assert run("token", "add", "fleet-agents", "--role", "reader", "--db", db) == (
        2, "", "pyagent: error: token 'fleet-agents' exists; revoke it first or choose another name\n"
    )  # fmt: skip
    assert run("token", "revoke", "fleet-agents", "--db", db)[:2] == (0, "")
    code, _, err = run("token", "revoke", "fleet-agents", "--db", db)
    assert (code, err) == (2, "pyagent: error: token 'fleet-agents': no such token\n")


def test_an_agent_token_bound_to_one_device(db: str) -> None:
    code, out, err = run(
        "token", "add", "phone-0042", "--role", "agent", "--device", "fr-brussels-0042", "--db", db
    )
    assert (code, err) == (
        0,
        "token phone-0042 (agent for device 'fr-brussels-0042') added; it is shown only now\n",
    )
    assert open_store(db).grant_for(token_hash(out.strip())) == Grant("agent", "fr-brussels-0042")
    code, out, _ = run("token", "list", "--db", db)
    assert code == 0 and out.startswith("phone-0042\tagent\t") and out.endswith("\tfr-brussels-0042\n")
    assert (
        run("token", "add", "shown-escaped", "--role", "agent", "--device", "fr-\u202e-1", "--db", db)[0] == 0
    )
    assert run("token", "list", "--db", db)[1].splitlines()[1].endswith("\tfr-\\u202e-1")  # no raw override


ID_RULE = "a device id is 1-512 characters without control characters, as in the device report"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--role", "reader", "--device", "fr-1"],
            "--device binds agent tokens only, not a reader token (see pyagent server token add --help)",
        ),
        (["--role", "agent", "--device", "fr-1\r"], f"--device 'fr-1\\r': {ID_RULE}"),
        (["--role", "agent", "--device", ""], f"--device '': {ID_RULE}"),
        (["--role", "agent", "--device", "x" * 513], f"--device '{'x' * 80}'… (513 characters): {ID_RULE}"),
        (["--role", "agent", "--device", "fr-\udcff"], f"--device 'fr-\\udcff': {ID_RULE}"),  # not UTF-8
        (
            ["--role", "agent", "--device", "*"],
            "--device '*': that is how token list shows a token for any device",
        ),
    ],
)
def test_a_device_binding_is_checked(db: str, args: list[str], message: str) -> None:
    assert run("token", "add", "phone", *args, "--db", db) == (2, "", f"pyagent: error: {message}\n")
    assert open_store(db).list_tokens() == []


def test_token_names_and_roles_are_checked(db: str) -> None:
    code, _, err = run("token", "add", "bad name\x1b[31m", "--role", "agent", "--db", db)
    assert (code, err) == (
        2, "pyagent: error: token name 'bad name\\x1b[31m': use 1-200 letters, digits, '.', '_', '@' or '-', "
        "starting with a letter or digit\n",
    )  # fmt: skip
    assert run("token", "add", "x", "--role", "root", "--db", db) == (
        2, "", "pyagent: error: Invalid value for '--role': 'root' is not one of 'agent', 'reader', 'admin'. "
        "(see pyagent server token add --help)\n",
    )  # fmt: skip


def test_db_env_and_bad_urls(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYAGENT_SERVER_DB", db)
    assert run("token", "add", "via-env", "--role", "reader")[0] == 0
    assert [t.name for t in open_store(db).list_tokens()] == ["via-env"]
    code, _, err = run("migrate", "--db", "mysql://root:hunter2@db/x")
    assert (code, err) == (
        2, "pyagent: error: --db mysql://***@db/x: unsupported database 'mysql'; use sqlite:///FILE or "
        "postgresql://…\n",
    )  # fmt: skip
    code, _, err = run("migrate", "--db", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert code == 3 and err.count("\n") == 1 and "hunter2" not in err  # (the tail is libpq's words)
    database = "postgresql+psycopg://***@127.0.0.1:1/x"
    assert err.startswith(f"pyagent: error: database {database}: connection failed: ")


def test_migrate_twice(db: str) -> None:
    from alembic.script import ScriptDirectory

    from pyagent.server.store.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    every = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    assert every[0] == "0001" and len(every) >= 4
    assert run("migrate", "--db", db) == (0, "", f"migrated SqlStore({db}): {', '.join(every)}\n")
    assert run("migrate", "--db", db) == (0, "", f"migrated SqlStore({db}): already up to date\n")

    # a database a newer pyagent migrated: said in one line, for every command that opens it
    engine = open_engine(db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    told = (
        f"pyagent: error: database {db}: its schema is at revision '9999', which this pyagent does not "
        f"know (its newest is '{every[-1]}'): a newer pyagent migrated it; run that one, or upgrade\n"
    )
    assert run("migrate", "--db", db) == (3, "", told)
    assert run("token", "add", "late", "--role", "reader", "--db", db) == (3, "", told)


def test_publish_without_a_key_takes_unsigned_bundles_and_says_so(db: str, bundles: Bundles) -> None:
    code, _, err = run("publish", "--name", "pyagent", str(bundles.unsigned), "--db", db)
    assert (code, err) == (
        0,
        "published pyagent revision u1 (rego; unsigned: no verification key is configured)\n",
    )
    code, _, err = run("publish", "--name", "pyagent", str(bundles.unsigned), "--db", db)
    assert (code, err) == (  # a retry (its answer lost): what it publishes is there, byte for byte
        0,
        "already published pyagent revision u1 (rego; already published: the current revision's rego "
        "build, byte for byte)\n",
    )
    other = bundles.unsigned.with_name("u1-again.tar.gz")  # the same revision, other bytes: refused
    with tarfile.open(bundles.unsigned) as source, tarfile.open(other, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        extra = b'{"note": "rebuilt"}'
        info = tarfile.TarInfo("/pyagent_extra/data.json")
        info.size = len(extra)
        target.addfile(info, io.BytesIO(extra))
    code, _, err = run("publish", "--name", "pyagent", str(other), "--db", db)
    assert (code, err) == (2, "pyagent: error: bundle pyagent: revision 'u1' is already the current one\n")


def test_publish_without_a_key_still_refuses_what_is_not_newer(db: str, bundles: Bundles) -> None:
    """No verification key: the build serial (read from the manifest unverified) still orders signed
    builds, also past a revision without a serial."""
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db)
    assert (code, err) == (
        0,
        "published pyagent revision r11, serial 11 (rego; signer not verified (no verification key is "
        "configured); its file digests match)\n",
    )
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_10), "--db", db)
    assert (code, err) == (
        2,
        "pyagent: error: bundle pyagent: serial 10 is not newer than the current serial 11 (revision r11)\n",
    )
    assert run("publish", "--name", "pyagent", str(bundles.unsigned), "--db", db)[0] == 0
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db)
    assert (code, err) == (  # an unsigned revision in between does not reopen older serials
        2,
        "pyagent: error: bundle pyagent: serial 11 is not newer than the published serial 11 "
        "(revision r11)\n",
    )
    head = open_store(db).bundle_head("pyagent", "rego")
    assert head is not None and (head.revision, head.serial) == ("u1", None)


def _edited(source: Path, target: Path, member_suffix: str) -> Path:
    """``source`` with its first member ending in ``member_suffix`` changed after signing."""
    with tarfile.open(source) as bundle, tarfile.open(target, "w:gz") as out:
        edited = False
        for member in bundle.getmembers():
            data = bundle.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and not edited and member.name.endswith(member_suffix):
                data, edited = data + b"\n# edited after signing\n", True
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    assert edited
    return target


def test_publish_without_a_key_refuses_a_bundle_edited_after_signing(
    db: str, bundles: Bundles, tmp_path: Path
) -> None:
    """Who signed cannot be known without the key, but the signature's own digests can be checked."""
    tampered = _edited(bundles.rego_11, tmp_path / "tampered.tar.gz", ".rego")
    code, _, err = run("publish", "--name", "pyagent", str(tampered), "--db", db)
    assert code == 2 and "digest mismatch" in err and err.count("\n") == 1, err
    assert open_store(db).bundle_head("pyagent", "rego") is None


def _config(tmp_path: Path, bundles: Bundles) -> str:
    config = tmp_path / "server.toml"
    config.write_text(f'[server.verification]\nkey_path = "{bundles.signer_public}"\n')
    return str(config)


def test_publish_with_a_key_verifies_and_refuses_rollback(db: str, bundles: Bundles, tmp_path: Path) -> None:
    config = _config(tmp_path, bundles)
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_10), str(bundles.wasm_10),
                       "--db", db, "--config", config)  # fmt: skip
    assert (code, err) == (0, "published pyagent revision r10, serial 10 (rego, wasm; signature verified)\n")
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_10), "--db", db, "--config", config)
    assert (code, err) == (
        0,
        "already published pyagent revision r10, serial 10 (rego; already published: the current "
        "revision's rego build, byte for byte)\n",
    )
    assert run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db, "--config", config)[0] == 0
    for old in (bundles.rego_10, bundles.wasm_10):  # no longer the current revision: a rollback, refused
        code, _, err = run("publish", "--name", "pyagent", str(old), "--db", db, "--config", config)
        said = "bundle pyagent: serial 10 is not newer than the current serial 11 (revision r11)"
        assert (code, err) == (2, f"pyagent: error: {said}\n")
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db)  # without the key
    assert code == 2 and "was verified by the server's key, and this publish verifies none" in err
    head = open_store(db).bundle_head("pyagent", "rego")
    wasm = open_store(db).bundle_head("pyagent", "wasm")
    assert head is not None and (head.revision, head.serial) == ("r11", 11)
    assert wasm is not None and wasm.revision == "r10"  # the newest revision that has a wasm build


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("unsigned", "rejected (unsigned): no /.signatures.json, and a verification key is configured: "
                     "unsigned bundles are refused"),
        ("forged_12", "rejected (bad-signature): JWT signature does not verify with RS256 key"),
    ],
)  # fmt: skip
def test_publish_with_a_key_refuses_unsigned_and_forged(
    db: str, bundles: Bundles, tmp_path: Path, which: str, reason: str
) -> None:
    path = getattr(bundles, which)
    code, _, err = run("publish", "--name", "pyagent", str(path), "--db", db,
                       "--config", _config(tmp_path, bundles))  # fmt: skip
    assert (code, err) == (2, f"pyagent: error: bundle {path}: {reason}\n")
    assert open_store(db).bundle_head("pyagent", "rego") is None


def test_publish_refuses_builds_of_different_revisions(db: str, bundles: Bundles, tmp_path: Path) -> None:
    files = (str(bundles.rego_11), str(bundles.wasm_11_other_revision))
    config = _config(tmp_path, bundles)
    code, _, err = run("publish", "--name", "pyagent", *files, "--db", db, "--config", config)
    assert (code, err) == (
        2, "pyagent: error: publish: the bundles are of different revisions: 'r11' (serial 11), "
        "'r11-other' (serial 11)\n",
    )  # fmt: skip
    assert open_store(db).bundle_names() == set()


def test_builds_signed_apart_with_default_serials_are_told_to_share_one(db: str, bundles: Bundles) -> None:
    """Each `policy bundle --signing-key` run stamps its own serial by default: the message named the same
    revision twice, as if they differed."""
    code, _, err = run("publish", "--name", "pyagent", str(bundles.rego_11), str(bundles.wasm_11_serial_12),
                       "--db", db)  # fmt: skip
    assert (code, err) == (
        2, "pyagent: error: publish: the bundles are builds of revision 'r11' with different serials "
        "(11, 12): build both with the same --serial (pyagent policy bundle --serial N)\n",
    )  # fmt: skip


def test_a_publish_without_the_key_cannot_follow_a_verified_revision(
    db: str, bundles: Bundles, tmp_path: Path
) -> None:
    """`server publish` without the server's config verifies nothing: it published an unsigned build
    over a server that said "signed bundles only", and agents without `signing` took it."""
    config = _config(tmp_path, bundles)
    assert run("publish", "--name", "pyagent", str(bundles.rego_10), "--db", db, "--config", config)[0] == 0
    refused = (
        "pyagent: error: bundle pyagent: revision 'r10' was verified by the server's key, and this "
        "publish verifies none; publish with the server's config, whose [server.verification] names the "
        "key (pyagent server publish --config FILE)\n"
    )
    assert run("publish", "--name", "pyagent", str(bundles.unsigned), "--db", db) == (2, "", refused)
    assert run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db) == (2, "", refused)
    head = open_store(db).bundle_head("pyagent", "rego")
    assert head is not None and (head.revision, head.serial) == ("r10", 10)
    assert run("publish", "--name", "pyagent", str(bundles.rego_11), "--db", db, "--config", config)[0] == 0


def test_publish_refuses_a_file_that_is_no_bundle(db: str, tmp_path: Path, policy_bundle: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really")
    code, _, err = run("publish", "--name", "pyagent", str(junk), "--db", db)
    assert (code, err) == (
        2, f"pyagent: error: bundle {junk}: not a readable tar.gz: bad gzip stream (Error -3 while "
        "decompressing data: unknown compression method)\n",
    )  # fmt: skip
    assert run("publish", "--name", "../etc", str(policy_bundle), "--db", db) == (  # only the name is wrong
        2, "", "pyagent: error: bundle name '../etc': use 1-200 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit\n",
    )  # fmt: skip


def test_a_name_ending_in_a_line_break_is_refused() -> None:
    """``re.match`` with ``$`` took "agents\\n" as a token name and "pyagent\\n" as a bundle name."""
    from pyagent.errors import InvalidInputError
    from pyagent.server.auth import check_name
    from pyagent.server.publish import check_bundle_name

    assert (check_name("agents"), check_bundle_name("pyagent")) == ("agents", "pyagent")
    with pytest.raises(InvalidInputError, match=r"^token name 'agents\\n': use 1-200 letters"):
        check_name("agents\n")
    with pytest.raises(InvalidInputError, match=r"^bundle name 'pyagent\\n': use 1-200 letters"):
        check_bundle_name("pyagent\n")


def test_publishing_a_pipe_is_refused_without_waiting(db: str, tmp_path: Path) -> None:
    """`server publish` read its files with its own reader, which waited forever on a FIFO."""
    import os

    fifo = tmp_path / "bundle.tar.gz"
    os.mkfifo(fifo)
    code, out, err = run("publish", "--name", "pyagent", str(fifo), "--db", db)
    assert (code, out, err) == (2, "", f"pyagent: error: {fifo}: bundle is a pipe, not a regular file\n")
