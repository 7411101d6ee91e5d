"""The container files: compose.yaml as Docker Compose reads it, the Dockerfile,
and the settings each service would run with (no Docker engine needed).

`docker-compose config` (Debian's docker-compose, installed by `make test`)
parses and validates compose.yaml against the Compose schema and resolves
its variables offline.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from conftest import require_tool
from nubes.config import Settings

ROOT = Path(__file__).resolve().parents[3]
NUBES_SERVICES = {"migrate", "api", "gateway", "worker", "dispatcher", "post-deploy", "backup"}
PROCESSES = ("api", "gateway", "worker", "dispatcher")
PASSWORDS = {
    "POSTGRES_PASSWORD": "0f3b9a1c5d7e2f4a6b8c0d1e",
    "RABBITMQ_PASSWORD": "a1b2c3d4e5f60718293a4b5c",
    "REDIS_PASSWORD": "9e8d7c6b5a4f3e2d1c0b9a8f",
}


def _compose(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("docker-compose", "to validate compose.yaml")
    (tmp_path / "compose.yaml").write_text((ROOT / "compose.yaml").read_text())
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return subprocess.run(
        [tool, "--project-directory", str(tmp_path), "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def resolved(tmp_path: Path) -> dict[str, Any]:
    done = _compose(PASSWORDS, tmp_path)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_compose_runs_every_process_type_beside_the_services(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == NUBES_SERVICES | {"postgres", "rabbitmq", "redis"}
    commands = {name: services[name]["command"] for name in NUBES_SERVICES - {"backup"}}
    assert commands == {
        "migrate": ["migrate"],
        "api": ["api"],
        "gateway": ["gateway"],
        "worker": ["worker"],
        "dispatcher": ["dispatcher"],
        "post-deploy": ["migrate", "--post-deploy"],
    }
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "nubes backup --output /var/lib/nubes/backups --keep" in services["backup"]["command"][0]


def test_the_gateway_publishes_the_three_udp_ports(resolved: dict[str, Any]) -> None:
    ports = resolved["services"]["gateway"]["ports"]
    published = {(int(p["target"]), p["protocol"]) for p in ports}
    assert published == {(5002, "udp"), (5003, "udp"), (5005, "udp")}
    defaults = Settings()
    assert {defaults.flap_raw_port, defaults.flap_base64_port, defaults.dtls_port} == {
        5002,
        5003,
        5005,
    }


def test_nubes_containers_are_read_only_and_wait_for_the_migration(
    resolved: dict[str, Any],
) -> None:
    for name in NUBES_SERVICES:
        service = resolved["services"][name]
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
    for name in PROCESSES:
        depends = resolved["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert resolved["services"]["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )


def test_post_deploy_waits_until_every_process_runs_the_new_release(
    resolved: dict[str, Any],
) -> None:
    depends = resolved["services"]["post-deploy"]["depends_on"]
    assert {name: depends[name]["condition"] for name in depends} == dict.fromkeys(
        PROCESSES, "service_healthy"
    )
    assert resolved["services"]["post-deploy"]["restart"] == "no"


def test_every_nubes_service_gets_valid_production_settings(resolved: dict[str, Any]) -> None:
    for name in NUBES_SERVICES:
        env = resolved["services"][name]["environment"]
        fields = {
            key.removeprefix("NUBES_").lower(): value
            for key, value in env.items()
            if key.startswith("NUBES_") and not key.startswith("NUBES_BACKUP_")
        }
        settings = Settings(**fields)
        assert settings.production, name
        assert settings.database_url.startswith("postgresql+asyncpg://nubes:")
        assert settings.ops_port == 9100
        assert settings.log_format == "json"


def test_compose_refuses_to_start_without_the_passwords(tmp_path: Path) -> None:
    missing = {key: value for key, value in PASSWORDS.items() if key != "REDIS_PASSWORD"}
    done = _compose(missing, tmp_path)
    assert done.returncode != 0
    assert "set REDIS_PASSWORD in .env" in done.stderr


def test_nubes_refuses_a_well_known_password_that_compose_accepts(tmp_path: Path) -> None:
    done = _compose({**PASSWORDS, "RABBITMQ_PASSWORD": "guest"}, tmp_path)
    assert done.returncode == 0, done.stderr
    env = yaml.safe_load(done.stdout)["services"]["worker"]["environment"]
    with pytest.raises(ValidationError, match="NUBES_BROKER_URL has a well-known password"):
        Settings(
            production=True,
            database_url=env["NUBES_DATABASE_URL"],
            broker_url=env["NUBES_BROKER_URL"],
            redis_url=env["NUBES_REDIS_URL"],
        )


def test_env_example_names_every_required_variable() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "compose.yaml").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert required == set(PASSWORDS)
    for name in required:
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name


# Dockerfile ------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, argument in _instructions():
        if instruction == "FROM":
            current = []
            stages[argument.split(" AS ")[-1].strip()] = current
        else:
            current.append((instruction, argument))
    return stages


def test_dockerfile_builds_portal_and_wheels_apart_from_the_runtime() -> None:
    stages = _stages()
    assert list(stages) == ["portal", "wheels", "runtime"]
    runtime = dict(stages["runtime"])
    assert "npm" not in " ".join(arg for _, arg in stages["runtime"])
    assert "build-essential" not in " ".join(arg for _, arg in stages["runtime"])
    assert runtime["USER"] == "nubes:nubes"
    assert runtime["HEALTHCHECK"].endswith('CMD ["nubes", "healthcheck", "--ready"]')
    assert runtime["ENTRYPOINT"] == '["nubes"]'
    exposed = set(runtime["EXPOSE"].split())
    assert exposed == {"8080/tcp", "5002/udp", "5003/udp", "5005/udp", "9100/tcp"}


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "portal/node_modules", ".git"} <= ignored
    for instruction, argument in _instructions():
        if instruction != "COPY" or argument.startswith("--from"):
            continue
        for source in argument.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source
