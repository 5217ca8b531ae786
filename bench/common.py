"""Shared plumbing for the benchmarks: a fresh database, a served API, figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from athos_identity import db
from athos_identity.settings import Settings, use_settings

MASTER_SECRET = "bench-master-secret-" + "7" * 32
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """ATHOS_BENCH_DATABASE_URL's server, or an embedded one in a temporary directory."""
    configured = os.environ.get("ATHOS_BENCH_DATABASE_URL")
    if configured:
        yield db.as_libpq_url(configured)
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="athos-bench-") as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="delete")
        try:
            yield db.as_libpq_url(server.get_uri())
        finally:
            server.cleanup()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated, empty database (libpq URL); settings point at it."""
    with postgres_server() as server_url:
        name = f"athos_bench_{secrets.token_hex(4)}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        use_settings(
            Settings(
                database_url=db.as_psycopg_url(url), master_secret=MASTER_SECRET, _env_file=None
            )
        )
        db.migrate(db.as_psycopg_url(url))
        try:
            yield url
        finally:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served_api(
    database_url: str, workers: int = 1, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """`athos-identity serve` in a subprocess, with extra `ATHOS_*` settings; yields its
    base URL."""
    port = free_port()
    env = {
        **os.environ,
        "ATHOS_DATABASE_URL": database_url,
        "ATHOS_MASTER_SECRET": MASTER_SECRET,
        "ATHOS_LOG_LEVEL": "WARNING",
        **(settings or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "athos_identity",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("the API did not become ready")
        yield base
    finally:
        process.terminate()
        process.wait(10)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """An `athos-identity` subcommand in a subprocess (the real thing, as operators run it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "athos_identity", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else values[0]


def report(figures: dict[str, object]) -> None:
    """The last line of every benchmark: one JSON object of its figures."""
    print(json.dumps(figures), flush=True)


class KeepAliveConnection:
    """A minimal HTTP/1.1 keep-alive client for load generation.

    httpx's async pool costs more CPU per request than the service under test on this
    2-core machine, so it would measure itself; this one only writes bytes and reads
    Content-Length bodies.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.fixed_headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        if tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def approve_shopify_install(sandbox: str, authorize_url: str) -> str:
    """The merchant presses Install on the sandbox's approval page; returns where Shopify
    redirects the browser (our OAuth callback)."""
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        page = browser.get(authorize_url)
        page.raise_for_status()
        form = _Form()
        form.feed(page.text)
        approved = browser.post(sandbox + form.action, data={**form.fields, "decision": "approve"})
        assert approved.status_code == 302, approved.text
        return str(approved.headers["location"])
