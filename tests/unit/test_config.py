"""Settings: production mode refuses what is unsafe, and says so without secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from nubes.config import MAX_SECRET_FILE, Settings, configuration_problems, production_problems
from nubes.errors import ConfigError

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


# -- NUBES_<FIELD>_FILE (Docker secrets) -------------------------------------------------


def _environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: dict[str, str],
    variables: dict[str, str] | None = None,
) -> None:
    """Only these NUBES_* variables; each of `files` in a file that NUBES_<NAME>_FILE names."""
    _clear_nubes_environment(monkeypatch)
    for name, text in files.items():
        secret = tmp_path / name.lower()
        secret.write_text(text)
        monkeypatch.setenv(f"NUBES_{name}_FILE", str(secret))
    for name, value in (variables or {}).items():
        monkeypatch.setenv(f"NUBES_{name}", value)


def _clear_nubes_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NUBES_"):
            monkeypatch.delenv(name)


PRODUCTION_URLS = {
    "DATABASE_URL": str(SAFE["database_url"]),
    "BROKER_URL": str(SAFE["broker_url"]),
    "REDIS_URL": str(SAFE["redis_url"]),
    "PRODUCTION": "true",
}


def test_a_value_comes_from_the_file_a_file_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = {k: v for k, v in PRODUCTION_URLS.items() if k != "DATABASE_URL"}
    # with the newline `echo ... > file` writes
    files = {"DATABASE_URL": PRODUCTION_URLS["DATABASE_URL"] + "\n"}
    _environment(monkeypatch, tmp_path, files, variables)
    settings = Settings()
    assert settings.database_url == f"postgresql+asyncpg://nubes:{STRONG}@postgres:5432/nubes"


def test_a_weak_password_from_a_file_is_refused_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = {k: v for k, v in PRODUCTION_URLS.items() if k != "REDIS_URL"}
    _environment(monkeypatch, tmp_path, {"REDIS_URL": "redis://:guest@redis:6379/0"}, variables)
    with pytest.raises(ValidationError) as caught:
        Settings()
    problems = configuration_problems(caught.value)
    assert "NUBES_REDIS_URL has a well-known password" in problems
    assert "guest" not in problems.replace("well-known", "")


def test_a_variable_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = {"DATABASE_URL": "postgresql://a:b@c/d"}
    _environment(monkeypatch, tmp_path, files, {"DATABASE_URL": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="both NUBES_DATABASE_URL and NUBES_DATABASE_URL_FILE"):
        Settings()


def test_an_empty_variable_leaves_the_value_to_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An empty variable: a compose override clearing the base file's value.
    files = {"BROKER_URL": "amqp://nubes:x@rabbitmq:5672/"}
    _environment(monkeypatch, tmp_path, files, {"BROKER_URL": ""})
    assert Settings().broker_url == "amqp://nubes:x@rabbitmq:5672/"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read"),
        (b"\xff\xfe password", "is not UTF-8 text"),
        (b"x" * (MAX_SECRET_FILE + 1), "is larger than"),
    ],
)
def test_an_unusable_secret_file_is_named_without_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes | None, problem: str
) -> None:
    _clear_nubes_environment(monkeypatch)
    secret = tmp_path / "secret"
    if content is not None:
        secret.write_bytes(content)
    monkeypatch.setenv("NUBES_BROKER_URL_FILE", str(secret))
    with pytest.raises(ConfigError) as caught:
        Settings()
    message = str(caught.value)
    assert message.startswith("NUBES_BROKER_URL_FILE: ")
    assert str(secret) in message
    assert problem in message
    assert "password" not in message
    assert "xxxx" not in message
