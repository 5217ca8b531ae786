"""Health, readiness and the error format of the whole API."""

from __future__ import annotations

import httpx
import pytest

from athos_identity import db
from athos_identity.settings import Settings, get_settings, use_settings
from support import TEST_MASTER_SECRET


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema"] == db.head_revision()


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/keys" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


@pytest.fixture
async def database_down(test_database, tmp_path):
    """Point the service at a port where no database listens, then restore."""
    previous = get_settings()
    await db.dispose_engine()
    use_settings(
        Settings(
            database_url="postgresql://nobody@127.0.0.1:1/none",
            master_secret=TEST_MASTER_SECRET,
            data_dir=tmp_path,
            _env_file=None,
        )
    )
    yield
    await db.dispose_engine()
    use_settings(previous)


async def test_readyz_is_503_when_the_database_is_down_and_the_api_still_answers(
    database_down: None,
) -> None:
    from athos_identity.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "unreachable" in ready.json()["detail"]
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_schema_is_behind(client: httpx.AsyncClient, owner_conn) -> None:
    (current,) = owner_conn.execute("SELECT version_num FROM alembic_version").fetchone()
    owner_conn.execute("UPDATE alembic_version SET version_num = 'old'")
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "athos-identity migrate" in response.json()["detail"]
    finally:
        owner_conn.execute("UPDATE alembic_version SET version_num = %s", (current,))
