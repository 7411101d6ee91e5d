"""Settings: production mode refuses what is unsafe, and says so without secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nubes.config import Settings, configuration_problems, production_problems

STRONG = "4f1c2a9b7e3d5a60c8b1"
SAFE = {
    "production": True,
    "database_url": f"postgresql://nubes:{STRONG}@postgres:5432/nubes",
    "broker_url": f"amqp://nubes:{STRONG}@rabbitmq:5672/",
    "redis_url": f"redis://:{STRONG}@redis:6379/0",
}


def test_safe_production_settings_are_accepted() -> None:
    settings = Settings(**SAFE)  # type: ignore[arg-type]
    assert settings.production
    assert production_problems(settings) == []


def test_embedded_adapters_are_refused_in_production() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(production=True)
    text = configuration_problems(caught.value)
    assert "NUBES_DATABASE_URL must start with postgresql://, not sqlite+aiosqlite://" in text
    assert "NUBES_BROKER_URL must start with amqp:// or amqps://, not memory://" in text
    assert "NUBES_REDIS_URL must start with redis:// or rediss://, not memory://" in text


@pytest.mark.parametrize(
    ("field", "url", "problem"),
    [
        ("database_url", "postgresql://nubes@postgres/nubes", "has no password"),
        ("database_url", "postgresql://postgres:postgres@postgres/nubes", "well-known"),
        ("broker_url", "amqp://guest:guest@rabbitmq:5672/", "well-known"),
        ("broker_url", "amqp://nubes:ChangeMe@rabbitmq:5672/", "well-known"),
        ("redis_url", "redis://:short1@redis:6379/0", "shorter than 12"),
        ("redis_url", "redis://redis:6379/0", "has no password"),
    ],
)
def test_weak_passwords_are_refused_in_production(field: str, url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{**SAFE, field: url})  # type: ignore[arg-type]
    text = configuration_problems(caught.value)
    assert f"NUBES_{field.upper()} " in text
    assert problem in text


def test_outside_production_the_defaults_are_fine() -> None:
    assert not Settings().production
    assert production_problems(Settings()) != []  # only reported, not enforced


def test_problems_never_repeat_the_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{**SAFE, "broker_url": "amqp://nubes:guest@rabbitmq/"})  # type: ignore[arg-type]
    text = configuration_problems(caught.value)
    assert "NUBES_BROKER_URL has a well-known password" in text
    assert "guest" not in text
    assert STRONG not in text


def test_field_errors_name_their_variable() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(http_port=70000, log_format="xml")  # type: ignore[arg-type]
    text = configuration_problems(caught.value)
    assert "NUBES_HTTP_PORT:" in text
    assert "NUBES_LOG_FORMAT:" in text
