"""The address guard: which addresses callbacks may reach, after DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from nubes.callbacks import guard
from nubes.callbacks.guard import AddressRefused, ResolveFailed, refused_reason, resolve_checked


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", guard.LOOPBACK),
        ("127.5.6.7", guard.LOOPBACK),
        ("::1", guard.LOOPBACK),
        ("10.1.2.3", guard.PRIVATE),
        ("172.16.0.1", guard.PRIVATE),
        ("172.31.255.255", guard.PRIVATE),
        ("192.168.1.1", guard.PRIVATE),
        ("fc00::1", guard.PRIVATE),
        ("fd12:3456::1", guard.PRIVATE),
        ("169.254.1.1", guard.LINK_LOCAL),
        ("fe80::1", guard.LINK_LOCAL),
        ("169.254.169.254", guard.CLOUD_METADATA),
        ("169.254.170.2", guard.CLOUD_METADATA),
        ("fd00:ec2::254", guard.CLOUD_METADATA),
        ("100.100.100.200", guard.CLOUD_METADATA),
        ("0.0.0.0", guard.UNSPECIFIED),
        ("0.1.2.3", guard.UNSPECIFIED),
        ("::", guard.UNSPECIFIED),
        ("224.0.0.1", guard.MULTICAST),
        ("239.255.255.250", guard.MULTICAST),
        ("ff02::1", guard.MULTICAST),
        ("240.0.0.1", guard.RESERVED),
        ("255.255.255.255", guard.RESERVED),
        ("192.0.2.1", guard.RESERVED),
        ("198.18.0.1", guard.RESERVED),
        ("2001:db8::1", guard.RESERVED),
        ("100::1", guard.RESERVED),
        ("100.64.0.1", guard.SHARED),
        ("100.127.255.254", guard.SHARED),
    ],
)
def test_refused_classes(address: str, reason: str) -> None:
    assert refused_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("address", "reason", "form"),
    [
        ("::ffff:127.0.0.1", guard.LOOPBACK, "IPv4-mapped 127.0.0.1"),
        ("::ffff:169.254.169.254", guard.CLOUD_METADATA, "IPv4-mapped 169.254.169.254"),
        ("::ffff:10.0.0.1", guard.PRIVATE, "IPv4-mapped 10.0.0.1"),
        ("::127.0.0.1", guard.LOOPBACK, "IPv4-compatible 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", guard.CLOUD_METADATA, "NAT64 169.254.169.254"),
        ("64:ff9b::7f00:1", guard.LOOPBACK, "NAT64 127.0.0.1"),
        ("2002:7f00:1::1", guard.LOOPBACK, "6to4 127.0.0.1"),
        ("2002:c0a8:101::", guard.PRIVATE, "6to4 192.168.1.1"),
        # Teredo: the client's address is stored inverted (~10.0.0.1 = f5ff:fffe).
        ("2001:0:808:808::f5ff:fffe", guard.PRIVATE, "Teredo client 10.0.0.1"),
    ],
)
def test_ipv4_carried_in_ipv6_is_unwrapped(address: str, reason: str, form: str) -> None:
    assert refused_reason(ipaddress.ip_address(address)) == f"{reason} ({form})"


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.32.0.1",  # just outside 172.16.0.0/12
        "100.128.0.1",  # just outside 100.64.0.0/10
        "169.255.0.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_reason(ipaddress.ip_address(address)) is None


def test_refusal_names_the_address_and_why() -> None:
    err = AddressRefused("169.254.169.254", "169.254.169.254", guard.CLOUD_METADATA)
    assert str(err) == "169.254.169.254 is a cloud metadata address"
    named = AddressRefused("metadata.internal", "169.254.169.254", guard.CLOUD_METADATA)
    assert str(named) == "metadata.internal (169.254.169.254) is a cloud metadata address"


async def test_localhost_is_refused_after_resolution() -> None:
    with pytest.raises(AddressRefused, match=r"^localhost \(.+\) is a loopback address$"):
        await resolve_checked("localhost", 80, allow_private=False)


async def test_localhost_is_allowed_when_the_operator_allows_private() -> None:
    addresses = await resolve_checked("localhost", 80, allow_private=True)
    assert addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("8.8.8.8", ["8.8.8.8"]), ("2606:4700:4700::1111", ["2606:4700:4700::1111"])],
)
async def test_public_ip_literals_need_no_lookup(
    host: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", _no_lookup)
    assert await resolve_checked(host, 443, allow_private=False) == expected


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ],
)
async def test_private_ip_literals_are_refused(host: str, message: str) -> None:
    with pytest.raises(AddressRefused) as caught:
        await resolve_checked(host, 80, allow_private=False)
    assert str(caught.value) == message


async def test_private_ip_literals_are_allowed_when_the_operator_allows() -> None:
    assert await resolve_checked("127.0.0.1", 80, allow_private=True) == ["127.0.0.1"]
    assert await resolve_checked("[::1]", 80, allow_private=True) == ["::1"]


async def test_one_private_address_among_public_ones_refuses_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"rebind.example": ["93.184.216.34", "10.0.0.7", "93.184.216.35"]}
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", _fake_dns(answers))
    with pytest.raises(AddressRefused, match=r"rebind.example \(10.0.0.7\) is a private"):
        await resolve_checked("rebind.example", 443, allow_private=False)


async def test_resolution_returns_distinct_addresses_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"example.test": ["93.184.216.34", "2606:2800:220:1::", "93.184.216.34"]}
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", _fake_dns(answers))
    addresses = await resolve_checked("example.test", 443, allow_private=False)
    assert addresses == ["93.184.216.34", "2606:2800:220:1::"]


async def test_unknown_host_fails_to_resolve() -> None:
    with pytest.raises(ResolveFailed, match=r"^DNS lookup of nonexistent.invalid failed"):
        await resolve_checked("nonexistent.invalid", 80, allow_private=True)


async def _no_lookup(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an IP literal was looked up")


def _fake_dns(answers: dict[str, list[str]]) -> Any:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    return getaddrinfo
