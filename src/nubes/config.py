"""One settings object for every Nubes process.

Every knob is an environment variable `NUBES_<FIELD>` (pydantic-settings),
or `NUBES_<FIELD>_FILE` naming a file that holds the value: Docker and
Kubernetes secrets arrive as files (/run/secrets/...), and a value read from
a file does not show in `docker inspect` or /proc/<pid>/environ the way an
environment variable does. Nothing else in the package reads the
environment: `Settings` is built once in the CLI and passed down. The
defaults are the embedded single-node setup (SQLite, in-process broker,
in-process cache); production points the three URLs at PostgreSQL,
RabbitMQ and Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from nubes.errors import ConfigError

# Passwords a production installation must not run with: empty, the
# services' own defaults, and the placeholders of examples.
WELL_KNOWN_PASSWORDS = frozenset(
    {
        "admin",
        "changeme",
        "change-me",
        "guest",
        "nubes",
        "password",
        "postgres",
        "rabbitmq",
        "redis",
        "root",
        "secret",
        "test",
    }
)
MIN_PRODUCTION_PASSWORD = 12


class Settings(BaseSettings):
    """Validated configuration; see docs/configuration.md for each field."""

    model_config = SettingsConfigDict(env_prefix="NUBES_", extra="ignore", frozen=True)

    database_url: str = "sqlite+aiosqlite:///./var/nubes.db"
    broker_url: str = "memory://"
    redis_url: str = "memory://"
    bind: str = "0.0.0.0"
    flap_raw_port: int = Field(default=5002, ge=0, le=65535)
    flap_base64_port: int = Field(default=5003, ge=0, le=65535)
    dtls_port: int = Field(default=5005, ge=0, le=65535)
    http_port: int = Field(default=8080, ge=0, le=65535)

    # `nubes backup` writes archives here unless given --output.
    backup_dir: str = "./var/backups"
    # Where pg_dump and pg_restore are; empty: found on PATH.
    pg_bin_dir: str = ""

    log_level: str = "INFO"
    # `text` for people at a terminal; `json` (one object per line, with
    # device serial, session and message ids as fields) for log collectors.
    log_format: Literal["text", "json"] = "text"
    # Production: the settings refuse the embedded adapters and empty,
    # short or well-known passwords in the service URLs, and no first-start
    # account is made (its password would land in the logs).
    production: bool = False
    # Every process answers /health, /ready and /metrics on this TCP port
    # (0: no such listener; `nubes serve` and `nubes api` also answer
    # /health on the API port).
    ops_port: int = Field(default=0, ge=0, le=65535)
    # Names of the broker's exchanges and queues start with this, so that
    # several installations (or test runs) can share one RabbitMQ.
    broker_prefix: str = "nubes"
    # Keys in Redis start with this, for the same reason.
    cache_prefix: str = "nubes"
    # RabbitMQ queue type of the durable queues Nubes declares: classic, or
    # quorum (replicated over a RabbitMQ cluster). An existing queue keeps
    # its type: see docs/deploy.md before changing this.
    broker_queue_type: Literal["classic", "quorum"] = "classic"
    # Several gateways behind one UDP balancer: share each device's transfer
    # state through Redis (NUBES_REDIS_URL), so that a device moved to another
    # gateway continues without a reset. Costs gateway throughput; off for one.
    gateway_shared_state: bool = False
    # How often the gateway asks the database for devices changed elsewhere.
    device_refresh_seconds: float = Field(default=1.0, gt=0, le=5.0)
    # Completed uplinks are published in batches: at most this many ...
    publish_batch_size: int = Field(default=256, ge=1, le=10_000)
    # ... or whatever arrived within this many milliseconds.
    publish_linger_ms: float = Field(default=2.0, ge=0, le=1000)
    # Upper bound on how long a publish may wait for the broker before the
    # gateway withholds the device's ack (the device then repeats).
    publish_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    # Worker: how many pipeline batches may be unacknowledged at once.
    worker_prefetch: int = Field(default=64, ge=1, le=10_000)
    # Gateway transfer state idle longer than this is evicted from memory
    # (devices report rarely; an evicted device gets one reset packet).
    device_idle_seconds: float = Field(default=86_400.0, gt=0)
    # At most this many devices keep transfer state in one gateway (LRU beyond).
    max_device_links: int = Field(default=200_000, ge=1)
    # Retention deletes expired messages and log rows at most this many per
    # statement (one short transaction each; see docs/deploy.md).
    retention_batch_size: int = Field(default=5_000, ge=100, le=50_000)
    # Downlinks not delivered within this many days expire.
    downlink_expiry_days: int = Field(default=30, ge=1)
    # How long an access token from `POST /v1/auth/login` stays valid.
    access_token_ttl_seconds: int = Field(default=43_200, ge=60, le=30 * 86_400)
    # Addresses of reverse proxies whose X-Forwarded-For / -Proto the API
    # believes (comma-separated IPs or networks, or "*"): rate limits count
    # the client's address, not the proxy's.
    trusted_proxies: str = "127.0.0.1"
    # Seconds between SSE heartbeats (comments) on idle live streams.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    # The built web portal served at `/`; empty: the one built into the
    # package by `make run` (nubes/portal_dist). Not built: `/` shows /docs.
    portal_dir: str = ""

    # Callbacks: may webhooks go to loopback, private, link-local and cloud
    # metadata addresses? Off by default (a customer's URL must not reach
    # the operator's own network); tests and closed installations turn it on.
    callback_allow_private: bool = False
    # At most this many requests in flight per callback, and in all.
    callback_concurrency: int = Field(default=16, ge=1, le=1000)
    dispatcher_concurrency: int = Field(default=200, ge=1, le=10_000)
    # A callback failing this many times in a row is paused (circuit breaker)
    # for the pause, then probed with one request.
    callback_breaker_failures: int = Field(default=5, ge=1, le=1000)
    callback_breaker_pause_seconds: float = Field(default=60.0, gt=0, le=86_400)

    # DTLS (port `dtls_port`): the PSK cipher suites offered, comma-separated
    # (CHESTER uses the default; TLS-PSK-WITH-AES-128-CCM and
    # TLS-PSK-WITH-AES-128-GCM-SHA256 may be added for other devices) ...
    dtls_suites: str = "TLS-PSK-WITH-AES-128-CCM-8"
    # ... how long a handshake may take before it is given up ...
    dtls_handshake_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # ... how long an association lives without a record from its device ...
    dtls_idle_seconds: float = Field(default=86_400.0, gt=0)
    # ... and how many handshakes may be half-open at once (more are dropped).
    dtls_max_handshakes: int = Field(default=10_000, ge=1, le=1_000_000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Files before the environment: an empty NUBES_X (a compose override
        # clearing the base file's value) must not hide NUBES_X_FILE.
        return (init_settings, SecretFiles(settings_cls), env_settings)

    @field_validator("dtls_suites")
    @classmethod
    def _known_suites(cls, value: str) -> str:
        from nubes.dtls import SUITES  # the dtls package is only needed when asked

        suites = [suite.strip() for suite in value.split(",") if suite.strip()]
        unknown = [suite for suite in suites if suite not in SUITES]
        if not suites or unknown:
            raise ValueError(f"DTLS suites must be among {sorted(SUITES)}, got {value!r}")
        return ",".join(suites)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accepts the usual URL forms and names the async driver Nubes uses."""
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _production_safe(self) -> Settings:
        if self.production:
            problems = production_problems(self)
            if problems:
                raise ValueError("production mode: " + "; ".join(problems))
        return self

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")


def configuration_problems(error: ValidationError) -> str:
    """The problems of invalid settings, without the values (they may hold passwords)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"NUBES_{field.upper()}: {message}" if field else message)
    return "; ".join(lines)


def production_problems(settings: Settings) -> list[str]:
    """What keeps these settings from being safe in production, in words."""
    problems = []
    services = (
        ("NUBES_DATABASE_URL", settings.database_url, ("postgresql",)),
        ("NUBES_BROKER_URL", settings.broker_url, ("amqp", "amqps")),
        ("NUBES_REDIS_URL", settings.redis_url, ("redis", "rediss")),
    )
    for name, url, schemes in services:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0]
        if scheme not in schemes:
            wanted = " or ".join(f"{scheme}://" for scheme in schemes)
            problems.append(f"{name} must start with {wanted}, not {parts.scheme}://")
            continue
        problem = _weak_password(parts.password)
        if problem:
            problems.append(f"{name} {problem}")
    return problems


def _weak_password(password: str | None) -> str:
    if not password:
        return "has no password"
    if password.lower() in WELL_KNOWN_PASSWORDS:
        return "has a well-known password"
    if len(password) < MIN_PRODUCTION_PASSWORD:
        return f"has a password shorter than {MIN_PRODUCTION_PASSWORD} characters"
    return ""


# Larger than any URL or password; a mistaken path to a big file is refused.
MAX_SECRET_FILE = 64 * 1024


class SecretFiles(PydanticBaseSettingsSource):
    """`NUBES_<FIELD>_FILE`: the value read from that file, trailing newline removed.

    Setting both `NUBES_X` (not empty) and `NUBES_X_FILE` is refused rather
    than one silently winning, as the official database images do.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"NUBES_{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if os.environ.get(variable):
                raise ConfigError(f"both {variable} and {variable}_FILE are set: keep one")
            values[name] = read_secret_file(f"{variable}_FILE", Path(path))
        return values


def read_secret_file(variable: str, path: Path) -> str:
    """The file's text without its trailing newline; errors name the file, never the text."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SECRET_FILE + 1)
    except OSError as err:
        raise ConfigError(f"{variable}: cannot read {path}: {err.strerror}") from None
    if len(data) > MAX_SECRET_FILE:
        raise ConfigError(f"{variable}: {path} is larger than {MAX_SECRET_FILE} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None
    return text.rstrip("\r\n")
