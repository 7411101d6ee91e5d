"""The gateway's Counter keys as metric families, read at scrape time."""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry

from helpers import UdpClient, eventually
from metrics_kit import GATEWAY_KEYS, FakeDtls, FakeGateway, samples, total, value
from nubes import __version__, flap, metrics
from nubes.bootstrap import Runtime
from nubes.gateway.metrics import RULES, families
from nubes.services import devices
from nubes.sim.runner import claim_token_for

SERIAL = 2101
DATA = flap.Packet(flap.F | flap.L, 0, b"\x06" + bytes(8) + b"\xa0").encode()


def _scrape(gateway: FakeGateway, dtls: FakeDtls | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Families(lambda: families(gateway, dtls)))
    return metrics.exposition(registry)


def test_every_key_becomes_a_sample_of_its_family() -> None:
    text = _scrape(FakeGateway(GATEWAY_KEYS, links=2), FakeDtls(associations=3, handshakes=1))
    expected = {
        ("nubes_gateway_datagrams_received_total", ()): 10,
        ("nubes_gateway_datagrams_sent_total", ()): 8,
        ("nubes_gateway_datagrams_dropped_total", (("reason", "unknown serial"),)): 1,
        ("nubes_gateway_packets_total", (("direction", "in"), ("outcome", "accepted"))): 6,
        ("nubes_gateway_packets_total", (("direction", "out"), ("outcome", "ack"))): 6,
        ("nubes_gateway_messages_total", (("type", "data"),)): 5,
        ("nubes_gateway_messages_total", (("type", "session"),)): 1,
        ("nubes_gateway_sessions_started_total", ()): 1,
        ("nubes_gateway_dtls_datagrams_received_total", ()): 4,
        ("nubes_gateway_dtls_handshakes_total", (("outcome", "established"), ("reason", ""))): 1,
        ("nubes_gateway_dtls_handshakes_total", (("outcome", "failed"), ("reason", "bad_key"))): 1,
        ("nubes_gateway_dtls_associations_closed_total", (("reason", "expired"),)): 1,
        ("nubes_gateway_devices_evicted_total", (("why", "capacity"),)): 1,
        ("nubes_gateway_devices_evicted_total", (("why", "idle"),)): 2,
        ("nubes_gateway_events_total", (("event", "dtls:not sent (DtlsError)"),)): 1,
        ("nubes_gateway_devices_in_memory", ()): 2,
        ("nubes_gateway_dtls_associations", ()): 3,
        ("nubes_gateway_dtls_handshakes_in_progress", ()): 1,
        ("nubes_gateway_dtls_stateless_datagrams_total", (("kind", "busy"),)): 0,
    }
    got = samples(text)
    for (name, labels), count in expected.items():
        assert got[name, frozenset(labels)] == count, name


def test_a_quiet_gateway_still_exports_its_totals() -> None:
    text = _scrape(FakeGateway({}))
    assert value(text, "nubes_gateway_datagrams_received_total") == 0
    assert value(text, "nubes_gateway_datagrams_sent_total") == 0
    assert value(text, "nubes_gateway_sessions_started_total") == 0
    assert not any(name.startswith("nubes_gateway_dtls") for name, _ in samples(text))


def test_label_values_are_escaped_in_the_text_format() -> None:
    reason = 'a "quoted" back\\slash\nand a new line'
    text = _scrape(FakeGateway({f"dropped:{reason}": 4}))
    assert b'reason="a \\"quoted\\" back\\\\slash\\nand a new line"' in text
    assert value(text, "nubes_gateway_datagrams_dropped_total", reason=reason) == 4


def test_counters_read_now_not_when_registered() -> None:
    gateway = FakeGateway({"datagrams_in": 1})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Families(lambda: families(gateway, None)))
    gateway.counters["datagrams_in"] += 41
    gateway.counters["dropped:short"] += 1
    text = metrics.exposition(registry)
    assert value(text, "nubes_gateway_datagrams_received_total") == 42
    assert value(text, "nubes_gateway_datagrams_dropped_total", reason="short") == 1


def test_rules_are_ordered_so_the_catch_all_comes_last() -> None:
    assert RULES[-1].prefix == ""
    for index, rule in enumerate(RULES[:-1]):
        shadowing = [r for r in RULES[:index] if rule.prefix.startswith(r.prefix)]
        assert not shadowing, (rule.prefix, [r.prefix for r in shadowing])


async def test_a_running_gateway_and_worker_export_what_they_did(cloud: Runtime) -> None:
    """The embedded cloud (`nubes serve` without API): one data message through."""
    key = claim_token_for(SERIAL)
    await devices.add_device(cloud.adapters.database.engine, serial=SERIAL, claim_token=key)
    client = await UdpClient.open(cloud.ports["raw"])
    try:
        assert await client.exchange(flap.seal(key, 999_999, DATA), 0.3) is None
        for _ in range(20):  # until the directory knows the device
            if await client.exchange(flap.seal(key, SERIAL, DATA), 0.2) is not None:
                break
    finally:
        client.close()
    registry = cloud.metrics_registry("serve")

    async def scrape() -> bytes:
        return metrics.exposition(registry)

    text = await eventually(
        scrape, lambda text: total(text, "nubes_worker_messages_stored_total") >= 1
    )
    assert value(text, "nubes_build_info", process="serve", version=__version__) == 1
    # 999999, and the device's own serial while the directory did not know it yet
    assert total(text, "nubes_gateway_datagrams_dropped_total", reason="unknown serial") >= 1
    assert value(text, "nubes_gateway_packets_total", direction="in", outcome="accepted") == 1
    assert value(text, "nubes_gateway_messages_total", type="data") == 1
    assert value(text, "nubes_gateway_devices_in_memory") == 1
    assert value(text, "nubes_gateway_dtls_associations") == 0
    assert value(text, "nubes_worker_messages_stored_total", type="data", direction="up") == 1
    assert total(text, "nubes_worker_pipeline_lag_seconds_count") >= 1
