"""Service settings, read from ATHOS_* environment variables (and a .env file)."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

MASTER_SECRET_FILE = "master-secret"  # noqa: S105 (a file name)


class Environment(StrEnum):
    development = "development"
    production = "production"


class ConfigurationError(RuntimeError):
    """A setting makes start-up impossible; the message is one line meant for an operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATHOS_", env_file=".env", extra="ignore")

    env: Environment = Environment.development
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; when unset an embedded Postgres runs in data_dir.",
    )
    data_dir: Path = Path(".athos")
    master_secret: SecretStr | None = Field(
        default=None,
        description="Root of the encryption and hashing keys (32+ random bytes, hex or text).",
    )
    app_role: str = Field(
        default="athos_app",
        description="Database role the API and workers act as; not the owner of the tables.",
    )
    app_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a login role that owns nothing (a member of app_role) "
        "for the API's and workers' tenant data; unset: database_url acting as app_role.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    db_pool_size: int = 10
    db_max_overflow: int = 5
    auth_cache_seconds: float = Field(
        default=10.0,
        description="How long a process trusts a verified API key before checking it again; "
        "a revocation reaches other processes within this time.",
    )
    public_url: str = "http://127.0.0.1:8000"
    access_log: bool = Field(
        default=True,
        description="One JSON line per request (method, route template, status, duration).",
    )
    rate_limit_lookup_per_second: float = Field(
        default=2000.0,
        ge=0,
        description="Look-up requests per second per API key and API process (0 = no limit).",
    )
    rate_limit_lookup_burst: float = Field(
        default=4000.0, ge=0, description="Look-up requests a key may send at once."
    )
    rate_limit_admin_per_second: float = Field(
        default=50.0,
        ge=0,
        description="Other requests (admin, operator) per second per API key and API process "
        "(0 = no limit).",
    )
    rate_limit_admin_burst: float = Field(
        default=200.0, ge=0, description="Other requests a key may send at once."
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (413 above it), webhooks included.",
    )

    sync_interval_minutes: int = Field(
        default=15,
        ge=1,
        le=59,
        description="Incremental pulls of granted connectors, every N minutes.",
    )
    sync_max_attempts: int = Field(
        default=8, ge=1, description="Tries of a pull on transient errors, with backoff."
    )
    worker_metrics_port: int | None = Field(
        default=None, description="Where `worker` serves its Prometheus metrics (unset: nowhere)."
    )
    worker_heartbeat_seconds: float = 10.0
    worker_stalled_seconds: float = Field(
        default=60.0, description="A worker silent this long is dead: its jobs are retried."
    )

    shopify_base_url: str = "https://{shop}"
    shopify_api_version: str = "2026-10"
    shopify_client_id: str | None = None
    shopify_client_secret: SecretStr | None = None
    shopify_previous_client_secret: SecretStr | None = None
    shopify_scopes: str = Field(
        default="read_customers,read_orders",
        description="Scopes a Shopify grant asks for (comma-separated); read_all_orders is "
        "added when a grant asks for more than 60 days of order history.",
    )
    shopify_console_url: str | None = Field(
        default=None,
        description="Where the browser lands after the Shopify approval; "
        "default {ATHOS_PUBLIC_URL}/console.",
    )
    shopify_state_ttl_seconds: int = Field(
        default=600, gt=0, description="Lifetime of a Grant Access state (single use)."
    )
    shopify_callback_max_age_seconds: int = Field(
        default=600, gt=0, description="Oldest OAuth callback `timestamp` accepted."
    )
    shopify_token_refresh_margin_seconds: int = Field(
        default=300, ge=0, description="Refresh an expiring access token this long before."
    )
    shopify_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Read timeout of one Shopify API request."
    )
    shopify_max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of one Shopify request after THROTTLED, a 429, a 5xx or a "
        "network error.",
    )
    bigcommerce_base_url: str = "https://api.bigcommerce.com"
    credentials_key_version: int = Field(
        default=1,
        ge=1,
        le=65535,
        description="Key version new platform credentials are encrypted with (rotation).",
    )
    bigcommerce_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Read timeout of one BigCommerce API request."
    )
    bigcommerce_max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of one BigCommerce request after a 429, a 5xx or a network error.",
    )

    @property
    def is_production(self) -> bool:
        return self.env is Environment.production

    @model_validator(mode="after")
    def _platforms_are_real_in_production(self) -> Settings:
        """In production the platform URLs must be HTTPS on public hosts: a sandbox or any
        local address there would send merchants' tokens somewhere they must not go."""
        if self.is_production:
            for name in ("shopify_base_url", "bigcommerce_base_url"):
                problem = _not_a_public_https_url(getattr(self, name).replace("{shop}", "x"))
                if problem:
                    raise ValueError(f"ATHOS_{name.upper()} {problem} (ATHOS_ENV=production)")
        return self

    @cached_property
    def master_key(self) -> bytes:
        """The master secret as bytes; generated once per data dir in development."""
        if self.master_secret is not None:
            value = self.master_secret.get_secret_value()
            if len(value) < 32:
                raise ConfigurationError("ATHOS_MASTER_SECRET must be at least 32 characters")
            return value.encode()
        if self.is_production:
            raise ConfigurationError("ATHOS_MASTER_SECRET is required when ATHOS_ENV=production")
        return _development_master_secret(self.data_dir)


def _not_a_public_https_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "must use https"
    host = (parts.hostname or "").lower()
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal")):
        return "must name a public host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_global:
        return "must name a public host"
    return None


def _development_master_secret(data_dir: Path) -> bytes:
    path = data_dir / MASTER_SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        log.warning(
            "generated a development master secret in %s; set ATHOS_MASTER_SECRET in production",
            path,
        )
    return path.read_text().strip().encode()


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def use_settings(new: Settings) -> Settings:
    """Replace the process-wide settings (the CLI and tests do this before anything starts)."""
    global _current
    _current = new
    return new
