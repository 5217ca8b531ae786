"""Fixtures for the sandbox tests (helpers live in sandbox_harness.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
if importlib.util.find_spec("athos_identity") is None:  # not installed in the venv yet
    sys.path.insert(0, str(SRC))

from sandbox_harness import (  # noqa: E402
    RunningSandbox,
    WebhookSink,
    running_sandbox,
    running_webhook_sink,
)

from athos_identity.sandbox.config import SandboxConfig  # noqa: E402


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    """Shared server with small demo stores; tests that change state make their own stores."""
    with running_sandbox(SandboxConfig(customers=300, orders=200, seed=11)) as running:
        yield running


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A real HTTP receiver that records raw bodies (signatures are over raw bytes)."""
    with running_webhook_sink() as sink:
        yield sink
