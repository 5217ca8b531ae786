"""Test harness for the sandbox: a real uvicorn server on a free port, and a webhook sink.

Kept out of conftest.py so test modules can import the helpers by a unique module name.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import uvicorn

from athos_identity.sandbox.config import SandboxConfig
from athos_identity.sandbox.server import create_sandbox_app
from athos_identity.sandbox.state import SandboxState

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class RunningSandbox:
    url: str
    state: SandboxState

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def unique(self, prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:8]}"


@contextmanager
def running_sandbox(config: SandboxConfig) -> Iterator[RunningSandbox]:
    """uvicorn in a thread, bound to a free loopback port chosen by the OS."""
    app = create_sandbox_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.02)
    try:
        yield RunningSandbox(f"http://127.0.0.1:{port}", app.state.sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class WebhookSink:
    url: str
    received: list[ReceivedRequest] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def running_webhook_sink() -> Iterator[WebhookSink]:
    """A real HTTP receiver that records raw bodies (signatures are over raw bytes)."""
    received: list[ReceivedRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            received.append(ReceivedRequest(self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookSink(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
