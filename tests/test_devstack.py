"""`make run` as a newcomer meets it: `athos-identity dev` in a real process, then stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from athos_identity import db
from support import create_database, drop_database, free_port

BANNER = "athos-identity is running"
STARTUP_SECONDS = 120


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def scratch_database(postgres_server: str) -> Iterator[str]:
    """A database of its own: the demo tenant must not join the suite's tenants."""
    name, url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(postgres_server, name)


def wait_for_banner(process: subprocess.Popen[str], log: Path) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text()
        if BANNER in text and "Ctrl-C stops everything" in text:
            return text
        assert process.poll() is None, f"athos-identity dev exited early:\n{text}"
        time.sleep(0.5)
    raise AssertionError(f"no banner within {STARTUP_SECONDS} s:\n{log.read_text()}")


def test_dev_starts_the_whole_stack_and_a_kill_stops_all_of_it(
    scratch_database: str, tmp_path: Path
) -> None:
    api_port, sandbox_port = free_port(), free_port()
    log = tmp_path / "dev.log"
    env = {
        **os.environ,
        "ATHOS_DATABASE_URL": db.as_psycopg_url(scratch_database),
        "ATHOS_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "80",
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "athos_identity", "dev",
             "--port", str(api_port), "--sandbox-port", str(sandbox_port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        banner = wait_for_banner(process, log)
        admin_key = re.search(r"Admin API key \(paste it to sign in\): (athk_\S+)", banner)
        assert admin_key, banner
        api = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{api}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{api}/console").status_code == 200
        connectors = httpx.get(
            f"{api}/v1/connectors", headers={"Authorization": f"Bearer {admin_key[1]}"}
        ).json()
        assert sorted(c["platform"] for c in connectors) == ["bigcommerce", "shopify"]
        state = httpx.get(f"http://127.0.0.1:{sandbox_port}/sandbox/state").json()
        assert state["bigcommerce"]["accounts"], "the demo BigCommerce token"
        # the secret it made for development is the operator's to keep, readable by them only
        assert (tmp_path / "data" / "master-secret").stat().st_mode & 0o777 == 0o600

        process.send_signal(signal.SIGTERM)  # as `docker stop` or a plain `kill` does
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 20
    while (listening(api_port) or listening(sandbox_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not listening(api_port), "the API outlived athos-identity dev"
    assert not listening(sandbox_port), "the sandbox outlived athos-identity dev"
