"""The README's scale-out section runs as written: two replicas on PostgreSQL behind nginx."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.postgres import RunningPostgres
from tests.helpers.pyagent_server import add_token
from tests.helpers.services import require_binary

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- readme-test: scale-out -->\n```sh\n(.*?)```\n<!-- /readme-test -->", re.S)


def test_readme_scale_out_runs_as_written(postgres: RunningPostgres, tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    script = BLOCK.search((REPO / "README.md").read_text())
    assert script is not None, "the README lost its scale-out block"
    db = postgres.create_database("readme")
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PYAGENT_SERVER_DB": db, "PATH": f"{venv_bin}:{nginx.parent}:{os.environ['PATH']}"}
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script.group(1)], cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert shell.wait(timeout=90) == 0, shell.stdout.read().decode() if shell.stdout else ""
        token = add_token(db, "readme-reader", "reader")
        seen = []
        for _ in range(4):  # both replicas answer through the balancer, and share one store
            request = urllib.request.Request(
                "http://127.0.0.1:8300/api/v1/devices/nobody", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as err:
                seen.append(err.code)
        assert seen == [404, 404, 404, 404]
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
