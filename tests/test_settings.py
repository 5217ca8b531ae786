"""Settings that make start-up unsafe are refused with a one-line reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from athos_identity.settings import ConfigurationError, Settings

SECRET = "s" * 40


def production(**values: str) -> Settings:
    return Settings(env="production", master_secret=SECRET, _env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("shopify_base_url", "http://127.0.0.1:8900/shopify/{shop}"),
        ("shopify_base_url", "http://{shop}"),
        ("bigcommerce_base_url", "https://localhost:8900/bigcommerce"),
        ("bigcommerce_base_url", "https://10.0.0.5/bigcommerce"),
        ("bigcommerce_base_url", "https://[::1]/bigcommerce"),
    ],
)
def test_production_refuses_sandbox_or_local_platform_urls(setting: str, url: str) -> None:
    with pytest.raises(ValidationError, match=f"ATHOS_{setting.upper()}"):
        production(**{setting: url})


def test_production_accepts_the_real_platforms_and_development_the_sandbox() -> None:
    assert production().bigcommerce_base_url == "https://api.bigcommerce.com"
    local = Settings(bigcommerce_base_url="http://127.0.0.1:8900/bigcommerce", _env_file=None)  # type: ignore[call-arg]
    assert local.bigcommerce_base_url.startswith("http://127.0.0.1")


def test_production_needs_a_master_secret(tmp_path) -> None:
    settings = Settings(env="production", data_dir=tmp_path, _env_file=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ATHOS_MASTER_SECRET is required"):
        _ = settings.master_key
    assert not (tmp_path / "master-secret").exists()


def test_development_generates_a_private_master_secret_once(tmp_path) -> None:
    first = Settings(data_dir=tmp_path, _env_file=None).master_key  # type: ignore[call-arg]
    again = Settings(data_dir=tmp_path, _env_file=None).master_key  # type: ignore[call-arg]
    assert first == again and len(first) == 64
    assert (tmp_path / "master-secret").stat().st_mode & 0o777 == 0o600
