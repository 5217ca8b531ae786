"""``athos-identity sandbox``: run the local Shopify + BigCommerce simulator."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from athos_identity.sandbox.config import DEFAULT_API_VERSION, SandboxConfig
from athos_identity.sandbox.server import create_sandbox_app, is_loopback_host

sandbox_app = typer.Typer(help="Local Shopify and BigCommerce that behave like the real ones.")


@sandbox_app.callback(invoke_without_command=True)
def run(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    customers: Annotated[int, typer.Option(help="Customers per shop/store.")] = 1000,
    orders: Annotated[int, typer.Option(help="Orders per shop/store.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same data and credentials.")] = 42,
    plan: Annotated[
        str | None, typer.Option(help="basic|advanced|plus|pro|unlimited for every shop and store.")
    ] = None,
    time_factor: Annotated[
        float, typer.Option(help="Clock speed for throttles, quotas and token expiry.")
    ] = 1.0,
    country: Annotated[str, typer.Option(help="Store country: US, CA, GB, FR or DE.")] = "US",
    api_version: Annotated[str, typer.Option(help="Shopify API version.")] = DEFAULT_API_VERSION,
    allow_remote: Annotated[
        bool,
        typer.Option(help="Answer non-loopback clients too (the state document holds secrets)."),
    ] = False,
) -> None:
    if not allow_remote and not is_loopback_host(host):
        # The state document hands out secrets: binding elsewhere must be a deliberate choice.
        Console(stderr=True).print(
            f"[red]refusing to listen on {host}: the sandbox listens on loopback only "
            "(127.0.0.1, ::1, localhost) unless --allow-remote is given[/red]"
        )
        raise typer.Exit(code=2)
    config = SandboxConfig(
        host=host,
        port=port,
        customers=customers,
        orders=orders,
        seed=seed,
        plan=plan,
        time_factor=time_factor,
        country=country.upper(),
        api_version=api_version,
        allow_remote=allow_remote,
    )
    app = create_sandbox_app(config)
    console = Console(stderr=True)
    base = f"http://{host}:{port}"
    console.print(f"[bold]athos-identity sandbox[/bold] on {base}")
    console.print(f"  state:       {base}/sandbox/state")
    console.print(f"  Shopify:     {base}/shopify/{config.shops[0]}/admin/oauth/authorize")
    console.print(f"  BigCommerce: {base}/bigcommerce/stores/{config.store_hashes[0]}/v3/")
    token = config.default_bigcommerce_token(config.store_hashes[0])
    console.print(f"  BigCommerce token: {token}")
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":  # pragma: no cover
    sandbox_app()
