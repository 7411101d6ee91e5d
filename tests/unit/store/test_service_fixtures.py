"""The service guards of tests/conftest.py: fail under CI, skip elsewhere.

Other suites rely on them to turn a missing RabbitMQ or Redis into a red CI
run instead of a quietly skipped test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from conftest import require_service, require_tool, service_available


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_listening_port_is_available(listening_port: int) -> None:
    assert service_available("127.0.0.1", listening_port)
    require_service("listener", "127.0.0.1", listening_port)


def test_a_missing_service_fails_under_ci(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="nothing"):
        require_service("nothing", "127.0.0.1", closed_port)


def test_a_missing_service_skips_outside_ci(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nothing"):
        require_service("nothing", "127.0.0.1", closed_port)


def test_unique_prefix_is_a_short_identifier(unique_prefix: str) -> None:
    assert unique_prefix.isidentifier()
    assert len(unique_prefix) <= 12


def test_a_missing_tool_fails_under_ci_and_skips_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_tool("sh", "to run anything") is not None
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-here"):
        require_tool("no-such-tool-here", "for this test")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-here"):
        require_tool("no-such-tool-here", "for this test")
