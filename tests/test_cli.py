"""The command line as operators and newcomers use it: a real process against the test database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx

from support import TEST_MASTER_SECRET, bearer


def cli(database: Any, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ATHOS_DATABASE_URL": database.sqlalchemy_url,
        "ATHOS_MASTER_SECRET": TEST_MASTER_SECRET,
        "ATHOS_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "athos_identity", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_tenant_and_keys_from_the_command_line_work_with_the_api(
    test_database: Any, client: httpx.AsyncClient, monkeypatch: Any
) -> None:
    from athos_identity.settings import get_settings

    # A revocation by another process reaches this one when its key cache expires.
    monkeypatch.setattr(get_settings(), "auth_cache_seconds", 0.0)
    created = cli(test_database, "tenants", "create", "Acme", "--region", "us", "--json")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    listed = await client.get("/v1/keys", headers=bearer(tenant["key"]))
    assert listed.status_code == 200 and [k["id"] for k in listed.json()] == [tenant["key_id"]]

    lookup = cli(
        test_database,
        "keys",
        "create",
        "--tenant",
        tenant["tenant_id"],
        "--scope",
        "lookup",
        "--json",
    )
    assert lookup.returncode == 0, lookup.stderr
    lookup_key = json.loads(lookup.stdout)
    answer = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": "email", "value": "a@example.com"}]},
        headers=bearer(lookup_key["key"]),
    )
    assert answer.status_code == 200

    revoked = cli(
        test_database, "keys", "revoke", lookup_key["key_id"], "--tenant", tenant["tenant_id"]
    )
    assert revoked.returncode == 0, revoked.stderr
    refused = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": "email", "value": "a@example.com"}]},
        headers=bearer(lookup_key["key"]),
    )
    assert refused.status_code == 401
    assert lookup_key["key"] not in revoked.stdout + revoked.stderr


KEY_LINE = re.compile(r"^(?:admin )?key \(shown once\): (\S+)$", re.MULTILINE)


async def test_plain_text_keys_are_on_one_line_and_can_be_copied(
    test_database: Any, client: httpx.AsyncClient
) -> None:
    """What a newcomer copies from an 80-column terminal or a log (stdout is a pipe here,
    not a TTY: rich's width falls back to 80): the whole key, on its own line."""
    narrow = {"COLUMNS": "80", "TERM": "dumb"}
    created = cli(test_database, "tenants", "create", "Acme Outdoor Supplies", **narrow)
    assert created.returncode == 0, created.stderr
    [admin_key] = KEY_LINE.findall(created.stdout)
    assert len(admin_key) == 81
    listed = await client.get("/v1/keys", headers=bearer(admin_key))
    assert listed.status_code == 200, listed.text

    tenant_id = re.search(r"^tenant ([0-9a-f-]{36}) created$", created.stdout, re.MULTILINE)
    assert tenant_id, created.stdout
    more = cli(
        test_database, "keys", "create", "--tenant", tenant_id[1], "--scope", "admin",
        "--name", "a key with a rather long name", **narrow,
    )  # fmt: skip
    assert more.returncode == 0, more.stderr
    [second_key] = KEY_LINE.findall(more.stdout)
    again = await client.get("/v1/keys", headers=bearer(second_key))
    assert again.status_code == 200 and len(again.json()) == 2


def test_bad_input_gets_a_clear_error_and_a_nonzero_exit(test_database: Any) -> None:
    region = cli(test_database, "tenants", "create", "Acme", "--region", "ZZ")
    assert region.returncode == 2 and "ZZ" in region.stderr
    unknown = cli(
        test_database, "keys", "revoke", "00000000-0000-0000-0000-000000000000",
        "--tenant", "00000000-0000-0000-0000-000000000001",
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "No API key with this id" in unknown.stderr + unknown.stdout
    assert "Traceback" not in unknown.stderr


def test_production_without_a_master_secret_refuses_to_start(test_database: Any) -> None:
    env = {
        **os.environ,
        "ATHOS_ENV": "production",
        "ATHOS_DATABASE_URL": test_database.sqlalchemy_url,
    }
    env.pop("ATHOS_MASTER_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "athos_identity", "serve", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ATHOS_MASTER_SECRET is required" in result.stderr


def test_served_logs_are_json_and_never_carry_query_strings(test_database: Any) -> None:
    """An OAuth callback's code and state travel in its query string: no log line may
    repeat them, in the main process or in `--workers` processes."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "ATHOS_DATABASE_URL": test_database.sqlalchemy_url,
        "ATHOS_MASTER_SECRET": TEST_MASTER_SECRET,
        "ATHOS_LOG_LEVEL": "INFO",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "athos_identity", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        callback = httpx.get(
            f"{base}/v1/shopify/oauth/callback",
            params={"code": "CANARYCODE42", "state": "CANARYSTATE42", "shop": "x.myshopify.com",
                    "hmac": "00", "timestamp": "1"},
        )  # fmt: skip
        assert callback.status_code == 303
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "CANARYCODE42" not in stderr and "CANARYSTATE42" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    access = [json.loads(line) for line in lines if "oauth/callback" in line]
    assert access, "the request is logged (by route)"
    assert all(not line.startswith("Traceback") for line in lines)
