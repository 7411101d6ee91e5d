"""The address guard: callbacks may not reach into the operator's own network.

A callback URL is chosen by a customer, so without a guard it would be a way
to make the cloud request its own loopback services, the private network it
runs in, or the cloud provider's metadata service (whose answers hold
credentials). `refused_reason` says why an address is off limits, and
`resolve_checked` resolves a host and refuses it when *any* of its addresses
is off limits (a name with one public and one private address must not work
half the time). The operator can allow them all with
`NUBES_CALLBACK_ALLOW_PRIVATE=true` (the tests do: their receivers are on
loopback).

The check has to be about the address that is connected to, not the name,
and it has to happen after DNS resolution: the sender connects only to the
addresses `resolve_checked` returned (see `sender`), so a name that resolves
to a public address for the check and to 127.0.0.1 for the connect (DNS
rebinding) gains nothing.

Address classes are listed explicitly rather than read from
`ipaddress`'s `is_private`/`is_global`, whose meaning changed between Python
versions; `is_global` is kept only as a last safety net. IPv6 forms that
carry an IPv4 address are unwrapped: an IPv4-mapped address (::ffff:a.b.c.d)
is judged as its IPv4 address, since the socket connects to exactly that;
IPv4-compatible, 6to4, NAT64 and Teredo forms are refused when the IPv4
address they carry is, and otherwise judged as IPv6 addresses.

A reason reads as the end of a sentence: ``f"{address} is {reason}"`` gives
"169.254.169.254 is a cloud metadata address".
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

from nubes.errors import NubesError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CLOUD_METADATA = "a cloud metadata address"
LOOPBACK = "a loopback address"
PRIVATE = "a private address"
LINK_LOCAL = "a link-local address"
UNSPECIFIED = "an unspecified address"
MULTICAST = "a multicast address"
RESERVED = "a reserved address"
SHARED = "a shared address space address (carrier-grade NAT)"
NOT_GLOBAL = "not a public address"

_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in pairs)


# First match wins; the more specific networks come first.
_V4_NETWORKS = _nets(
    ("0.0.0.0/8", UNSPECIFIED),  # "this network"; Linux connects 0.0.0.0 to itself
    ("127.0.0.0/8", LOOPBACK),
    ("10.0.0.0/8", PRIVATE),
    ("172.16.0.0/12", PRIVATE),
    ("192.168.0.0/16", PRIVATE),
    ("100.64.0.0/10", SHARED),
    ("169.254.0.0/16", LINK_LOCAL),
    ("192.0.0.0/24", RESERVED),  # IETF protocol assignments
    ("192.0.2.0/24", RESERVED),  # documentation
    ("198.51.100.0/24", RESERVED),  # documentation
    ("203.0.113.0/24", RESERVED),  # documentation
    ("192.88.99.0/24", RESERVED),  # 6to4 relay anycast (deprecated)
    ("198.18.0.0/15", RESERVED),  # benchmarking
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),  # including 255.255.255.255
)
_V6_NETWORKS = _nets(
    ("::/128", UNSPECIFIED),
    ("::1/128", LOOPBACK),
    ("::/8", RESERVED),  # IPv4-compatible and the rest, once unwrapped
    ("64:ff9b:1::/48", PRIVATE),  # local-use NAT64
    ("100::/64", RESERVED),  # discard-only
    ("2001:db8::/32", RESERVED),  # documentation
    ("fc00::/7", PRIVATE),  # unique local
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", PRIVATE),  # site-local (deprecated)
    ("ff00::/8", MULTICAST),
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressRefused(NubesError):
    """A callback host that is, or resolves to, an address the guard refuses."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        literal = host.removeprefix("[").removesuffix("]") == address
        subject = address if literal else f"{host} ({address})"
        super().__init__(f"{subject} is {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class ResolveFailed(NubesError):
    """A callback host that DNS cannot resolve."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"DNS lookup of {host} failed: {detail}")
        self.host = host


def refused_reason(ip: IPAddress) -> str | None:
    """Why a callback may not connect to `ip`, or None when it may."""
    if ip in _METADATA:
        return CLOUD_METADATA
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the socket connects to the IPv4 address itself
            reason = refused_reason(ip.ipv4_mapped)
            return None if reason is None else f"{reason} (IPv4-mapped {ip.ipv4_mapped})"
        for embedded, form in _embedded_ipv4(ip):
            reason = refused_reason(embedded)
            if reason is not None:
                return f"{reason} ({form} {embedded})"
        if ip in _NAT64:  # DNS64 answer for a public IPv4 host
            return None
    table = _V4_NETWORKS if isinstance(ip, ipaddress.IPv4Address) else _V6_NETWORKS
    for network, reason in table:
        if ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return RESERVED
    return None if ip.is_global else NOT_GLOBAL


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> Iterator[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address carries, with the form's name."""
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    if ip in _NAT64:
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        yield ip.sixtofour, "6to4"
    if ip.teredo is not None:
        server, client = ip.teredo
        yield server, "Teredo server"
        yield client, "Teredo client"


def parse_ip(host: str) -> IPAddress | None:
    """`host` as an IP address when it is a literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[str]:
    """The distinct addresses of `host` in resolver order; literals as they are."""
    literal = parse_ip(host)
    if literal is not None:
        return [str(literal)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as err:
        raise ResolveFailed(host, str(err) or type(err).__name__) from err
    addresses = [str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise ResolveFailed(host, "no IPv4 or IPv6 address")
    return list(dict.fromkeys(addresses))


def check(host: str, addresses: list[str], *, allow_private: bool) -> list[str]:
    """`addresses`, or AddressRefused when any of them is refused and not allowed."""
    if allow_private:
        return addresses
    for address in addresses:
        reason = refused_reason(ipaddress.ip_address(address))
        if reason is not None:
            raise AddressRefused(host, address, reason)
    return addresses


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for `host`, every one of them allowed.

    Raises AddressRefused when any address is refused (unless `allow_private`)
    and ResolveFailed when the name does not resolve.
    """
    return check(host, await resolve(host, port), allow_private=allow_private)
