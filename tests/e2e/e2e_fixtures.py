"""Fixtures of the browser tests (loaded with `pytest_plugins = ["e2e_fixtures"]`; not a
conftest.py: a second `conftest` module would shadow tests/conftest.py).

Everything is real and local: the service (create_app under uvicorn, on a free port, in the
test's event loop), a procrastinate worker for the pulls (a task in the same loop, so the
service, the worker and the test share one database engine), the platform sandbox (uvicorn
in a thread), and Debian's Chromium driven by Playwright. Browsers are never downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from e2e_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, DESKTOP, Service, Steps
from sandbox_harness import RunningSandbox, running_sandbox

from athos_identity.sandbox.config import SandboxConfig
from athos_identity.settings import get_settings

# --- the browser ------------------------------------------------------------------------------


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's "
            "chromium (`apt-get install -y chromium`; `make test` installs it when apt is "
            "available). Playwright's own browser downloads are not used.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the whole session (the machine is small)."""
    _require_chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


@pytest.fixture
async def steps(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Steps]:
    recorded = Steps(tmp_path / "steps")
    recorded.folder.mkdir()
    yield recorded
    report = getattr(request.node, "e2e_report_call", None)
    failed = report is None or report.failed
    if failed or os.environ.get("ATHOS_E2E_KEEP"):
        for index, page in enumerate(recorded.pages):
            with contextlib.suppress(Exception):
                await page.screenshot(
                    path=str(recorded.folder / f"99-at-failure-{index}.png"), full_page=True
                )
        target = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(recorded.folder, target)
        print(f"\nscreenshots of the journey: {target}")


@pytest.fixture
async def desktop(browser: Any, steps: Steps) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=DESKTOP)
    page = steps.watch(await context.new_page())
    page.set_default_timeout(15_000)
    yield page
    await context.close()


# --- the sandbox and the service -------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(SandboxConfig(customers=20, orders=20, seed=41)) as running:
        yield running


class _Server(uvicorn.Server):
    """uvicorn in the test's event loop; signals stay pytest's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def service(
    test_database: object, e2e_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Service]:
    """The real service on a free port (ATHOS_PUBLIC_URL = its address, so Shopify's
    redirect comes back to it) and a real worker for the pulls queue."""
    from athos_identity.app import create_app
    from athos_identity.jobs import open_jobs
    from athos_identity.sync.tasks import PULLS_QUEUE

    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = get_settings()
    config = e2e_sandbox.state.config
    monkeypatch.setattr(settings, "public_url", url)
    monkeypatch.setattr(settings, "shopify_console_url", None)
    monkeypatch.setattr(settings, "shopify_base_url", f"{e2e_sandbox.url}/shopify/{{shop}}")
    monkeypatch.setattr(settings, "shopify_client_id", config.shopify_client_id)
    monkeypatch.setattr(settings, "shopify_client_secret", SecretStr(config.shopify_client_secret))
    monkeypatch.setattr(settings, "shopify_previous_client_secret", None)
    monkeypatch.setattr(settings, "shopify_max_retries", 2)
    monkeypatch.setattr(settings, "bigcommerce_base_url", f"{e2e_sandbox.url}/bigcommerce")
    monkeypatch.setattr(settings, "bigcommerce_max_retries", 2)

    server = _Server(
        uvicorn.Config(create_app(), log_level="warning", lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        sock.close()
        raise RuntimeError("the service did not start")

    jobs = await open_jobs()
    worker = asyncio.create_task(
        jobs.run_worker_async(
            queues=[PULLS_QUEUE],
            install_signal_handlers=False,
            concurrency=1,
            shutdown_graceful_timeout=5,
        )
    )
    try:
        yield Service(url, e2e_sandbox)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
        sock.close()
