"""The `athos-identity` command line: serve, migrate, tenants, keys (and more per domain)."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from athos_identity.db import database_in_use, tenant_transaction, transaction
from athos_identity.db import migrate as run_migrations
from athos_identity.kit.errors import AppError
from athos_identity.kit.regions import SUPPORTED_REGIONS
from athos_identity.observability import configure_logging, serve_worker_metrics, uvicorn_log_config
from athos_identity.sandbox.cli import sandbox_app
from athos_identity.settings import ConfigurationError, get_settings
from athos_identity.tenants import service as tenants
from athos_identity.tenants.schemas import KeyOut, Scope

app = typer.Typer(
    help="athos-identity: hashed customer identities for Athos Commerce.", no_args_is_help=True
)
tenants_app = typer.Typer(help="Create tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="Create and revoke API keys.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(sandbox_app, name="sandbox")

T = TypeVar("T")
out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _check_settings() -> None:
    """Fail fast, in one line, on settings that make the service unsafe or unusable."""
    try:
        _ = get_settings().master_key
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _announce_database() -> str:
    url, line = database_in_use()
    err.print(line, soft_wrap=True)
    return url


@app.command()
def migrate() -> None:
    """Bring the database schema to the latest version."""
    configure_logging(get_settings().log_level, json_output=False)
    url = _announce_database()
    run_migrations(url)
    err.print("schema is at the latest migration")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (ATHOS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ATHOS_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (about one per core).")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level)
    _check_settings()
    _announce_database()
    uvicorn.run(
        "athos_identity.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=uvicorn_log_config(settings.log_level),
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    sandbox_port: Annotated[int, typer.Option(help="Sandbox port.")] = 8900,
) -> None:
    """Everything locally: embedded Postgres, sandbox, API, worker and a demo tenant."""
    from athos_identity.devstack import run_dev

    configure_logging(get_settings().log_level, json_output=False)
    _check_settings()
    run_dev(port, sandbox_port, err)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once by this process.")] = 4,
) -> None:
    """Run background jobs (pulls, schedules); start as many as you like, on any host."""
    from athos_identity.jobs import open_jobs
    from athos_identity.sync.tasks import retry_stalled_jobs

    settings = get_settings()
    configure_logging(settings.log_level)
    _check_settings()
    _announce_database()

    serve_worker_metrics(settings.worker_metrics_port)

    async def run() -> None:
        jobs = await open_jobs()
        # Jobs of a worker killed before this one started go back to the queue at once.
        await retry_stalled_jobs(jobs)
        gc.freeze()  # start-up objects out of the collector's sight, as in the API (app.py)
        await jobs.run_worker_async(
            concurrency=concurrency,
            update_heartbeat_interval=settings.worker_heartbeat_seconds,
            stalled_worker_timeout=settings.worker_stalled_seconds,
        )

    asyncio.run(run())


@app.command()
def sync(
    connector_id: uuid.UUID,
    full: Annotated[bool, typer.Option("--full", help="Everything, not just changes.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Show progress until it ends.")] = False,
    url: Annotated[str | None, typer.Option(help="The API (default ATHOS_PUBLIC_URL).")] = None,
    key: Annotated[str, typer.Option(envvar="ATHOS_API_KEY", help="An admin API key.")] = "",
) -> None:
    """Start a pull of a connector through the API, and with --follow watch it run."""
    from athos_identity.sync.progress import AlreadyRunning, follow_run, start_run

    base = url or get_settings().public_url
    try:
        run_id = start_run(base, key, connector_id, "full" if full else "incremental", err)
        out.print(f"sync run [bold]{run_id}[/bold] queued")
    except AlreadyRunning as running:
        # One pull per store at a time: with --follow, watch the one there is (often the
        # scheduler's incremental pull) rather than fail.
        if not follow:
            err.print(
                f"[red]error 409:[/red] a sync of this connector is already queued or running: "
                f"{running.run_id} (--follow watches it)",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        run_id = running.run_id
        out.print(f"a sync of this connector is already running: following run [bold]{run_id}")
    if follow:
        status = follow_run(base, key, run_id, out)
        raise typer.Exit(0 if status == "succeeded" else 1)


@tenants_app.command("create")
def tenants_create(
    name: str,
    region: Annotated[str | None, typer.Option(help="Default phone region, e.g. US.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant and print its first admin key (shown once)."""
    if region is not None and region.upper() not in SUPPORTED_REGIONS:
        err.print(f"[red]error:[/red] --region {region!r} is not a region phone numbers know")
        raise typer.Exit(2)
    region = region.upper() if region else None
    _check_settings()
    _announce_database()

    async def create() -> tuple[uuid.UUID, str, KeyOut]:
        async with transaction() as session:
            tenant, key, token = await tenants.create_tenant(session, name, region)
            return tenant.tenant_id, token, KeyOut.model_validate(key)

    tenant_id, token, key = _run_or_exit(create())
    if as_json:
        print(json.dumps({"tenant_id": str(tenant_id), "key_id": str(key.id), "key": token}))
    else:
        # soft_wrap: rich folds at 80 columns (its width when not a terminal), which would
        # cut the 81-character key in two and make it impossible to copy.
        out.print(f"tenant [bold]{tenant_id}[/bold] created", soft_wrap=True)
        out.print(f"admin key (shown once): [bold]{token}[/bold]", soft_wrap=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")],
    scope: Annotated[list[Scope], typer.Option(help="admin, lookup or operator; repeatable.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an API key for a tenant and print it (shown once)."""
    _check_settings()
    _announce_database()

    async def create() -> tuple[uuid.UUID, str]:
        async with tenant_transaction(tenant) as session:
            key, token = await tenants.create_key(session, tenant, scope, name)
            return key.id, token

    key_id, token = _run_or_exit(create())
    if as_json:
        print(json.dumps({"tenant_id": str(tenant), "key_id": str(key_id), "key": token}))
    else:
        scopes = ", ".join(s.value for s in scope)
        out.print(f"key [bold]{key_id}[/bold] ({scopes})", soft_wrap=True)
        out.print(f"key (shown once): [bold]{token}[/bold]", soft_wrap=True)  # one line, as above


@keys_app.command("revoke")
def keys_revoke(
    key_id: uuid.UUID,
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id the key belongs to.")],
) -> None:
    """Revoke an API key at once."""
    _announce_database()

    async def revoke() -> None:
        async with tenant_transaction(tenant) as session:
            await tenants.revoke_key(session, key_id)

    _run_or_exit(revoke())
    out.print(f"key {key_id} revoked", soft_wrap=True)


def _run_or_exit(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except AppError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None


def main() -> None:
    app()
