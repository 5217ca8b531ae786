"""The job queue: procrastinate on the service's own database (DESIGN.md §8).

Job arguments are ids only (a tenant, a run): never an identifier or a token.
"""

from __future__ import annotations

import procrastinate
from psycopg_pool import AsyncConnectionPool

from athos_identity.db import as_libpq_url, database_url

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=[
        "athos_identity.sync.tasks",
        "athos_identity.connectors.bigcommerce.tasks",
        "athos_identity.connectors.shopify.tasks",
    ],
)

_pool: AsyncConnectionPool | None = None


async def open_jobs() -> procrastinate.App:
    """Open the queue for this process (idempotent): the API defers, workers also run."""
    global _pool
    if _pool is None:
        pool = AsyncConnectionPool(
            as_libpq_url(database_url()),
            min_size=1,
            max_size=4,
            open=False,
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=True)
        await app.open_async(pool)
        _pool = pool
    return app


async def close_jobs() -> None:
    global _pool
    if _pool is not None:
        await app.close_async()
        await _pool.close()
        _pool = None
