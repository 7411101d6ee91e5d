"""The gateway's metrics, read from what it counts anyway.

`Gateway.counters` is a `Counter[str]` that the receive path increments
with plain dict additions; its keys name a family and its labels
(`dropped:<reason>`, `in:<outcome>`, `messages:<type>`, `dtls:…`). Here,
at scrape time only, `families` maps each key to a metric family: no lock,
object or call is added per datagram. A key no rule knows is exported as
`nubes_gateway_events_total{event}`, so a new counter shows up unmapped
rather than not at all. Every label value comes from a fixed set in the
code (reasons, outcomes, message types), never from a device.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nubes.dtls.server import DtlsCounters

__all__ = ["families"]


@dataclass(frozen=True, slots=True)
class Rule:
    """Counter keys starting with `prefix` → `name{labels}`; `fixed` labels come first."""

    prefix: str
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()


# Longest prefixes first: the first rule that matches a key wins.
RULES = (
    Rule("datagrams_in", "nubes_gateway_datagrams_received",
         "FLAP datagrams received: MAC-envelope datagrams and decrypted DTLS records"),
    Rule("datagrams_out", "nubes_gateway_datagrams_sent",
         "FLAP datagrams sent to devices (MAC envelope or DTLS records)"),
    Rule("dropped:", "nubes_gateway_datagrams_dropped",
         "Datagrams dropped before reaching a device's transfer, by reason", ("reason",)),
    Rule("in:", "nubes_gateway_packets", "FLAP packets by direction and log outcome",
         ("direction", "outcome"), ("in",)),
    Rule("out:", "nubes_gateway_packets", "FLAP packets by direction and log outcome",
         ("direction", "outcome"), ("out",)),
    Rule("messages:", "nubes_gateway_messages",
         "Uplink messages the pipeline durably accepted (and the device was acked), by type",
         ("type",)),
    Rule("dtls:datagrams_in", "nubes_gateway_dtls_datagrams_received",
         "UDP datagrams on the DTLS port, handshakes included"),
    Rule("dtls:dtls_established", "nubes_gateway_dtls_handshakes",
         "DTLS handshakes finished, by outcome and failure reason",
         ("outcome", "reason"), ("established", "")),
    Rule("dtls:dtls_failed:", "nubes_gateway_dtls_handshakes",
         "DTLS handshakes finished, by outcome and failure reason",
         ("outcome", "reason"), ("failed",)),
    Rule("dtls:dtls_closed:", "nubes_gateway_dtls_associations_closed",
         "DTLS associations ended, by reason", ("reason",)),
    Rule("links evicted", "nubes_gateway_devices_evicted",
         "Devices forgotten from memory, by why", ("why",), ("capacity",)),
    Rule("links expired", "nubes_gateway_devices_evicted",
         "Devices forgotten from memory, by why", ("why",), ("idle",)),
    Rule("", "nubes_gateway_events", "Other events the gateway counts, by name", ("event",)),
)  # fmt: skip

SESSIONS = "messages:session"
DTLS_STATELESS = ("hello_verify", "rejected", "busy", "dropped")


class GatewayView(Protocol):
    @property
    def counters(self) -> Counter[str]: ...

    @property
    def links(self) -> int: ...


class DtlsView(Protocol):
    @property
    def counters(self) -> DtlsCounters: ...

    @property
    def association_count(self) -> int: ...

    @property
    def handshake_count(self) -> int: ...


def families(gateway: GatewayView, dtls: DtlsView | None) -> Iterator[Metric]:
    """Every gateway family, from the counters as they are now."""
    counters = dict(gateway.counters)  # a copy: the loop may add keys meanwhile
    yield from counter_families(counters)
    yield CounterMetricFamily(
        "nubes_gateway_sessions_started",
        "FLAP sessions started (CREATE_SESSION accepted and acked)",
        value=counters.get(SESSIONS, 0),
    )
    yield GaugeMetricFamily(
        "nubes_gateway_devices_in_memory",
        "Devices whose transfer state the gateway holds in memory",
        value=gateway.links,
    )
    if dtls is not None:
        yield from dtls_families(dtls)


def counter_families(counters: dict[str, int]) -> Iterator[CounterMetricFamily]:
    """The counter keys grouped into families by `RULES`; datagram totals always."""
    made: dict[str, CounterMetricFamily] = {}
    for key, count in sorted(counters.items()):
        rule = next(rule for rule in RULES if key.startswith(rule.prefix))
        family = made.get(rule.name)
        if family is None:
            family = made[rule.name] = CounterMetricFamily(
                rule.name, rule.documentation, labels=list(rule.labels)
            )
        family.add_metric([*rule.fixed, *_rest(key, rule)], count)
    for rule in RULES[:2]:
        if rule.name not in made:
            made[rule.name] = CounterMetricFamily(rule.name, rule.documentation, value=0)
    yield from made.values()


def dtls_families(dtls: DtlsView) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "nubes_gateway_dtls_associations",
        "DTLS associations established and not ended",
        value=dtls.association_count,
    )
    yield GaugeMetricFamily(
        "nubes_gateway_dtls_handshakes_in_progress",
        "DTLS handshakes started and not yet finished",
        value=dtls.handshake_count,
    )
    stateless = CounterMetricFamily(
        "nubes_gateway_dtls_stateless_datagrams",
        "DTLS datagrams answered or dropped without state: cookie requests sent "
        "(hello_verify), ClientHellos refused (rejected) or dropped while the handshake "
        "table was full (busy), other datagrams from unknown addresses (dropped)",
        labels=["kind"],
    )
    for kind in DTLS_STATELESS:
        stateless.add_metric([kind], getattr(dtls.counters, kind))
    yield stateless


def _rest(key: str, rule: Rule) -> list[str]:
    """The label values a key carries after its prefix (one, or none if fixed fill all)."""
    missing = len(rule.labels) - len(rule.fixed)
    return [key.removeprefix(rule.prefix)] if missing else []
