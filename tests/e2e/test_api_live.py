"""A user watches a device live: `nubes serve`, an API key, the SSE stream, `nubes sim`.

Everything as users run it: real processes, real UDP and HTTP. The stream is
opened before the simulator runs; its events wait in the socket meanwhile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

SERIAL = "300000501"
CLAIM_TOKEN = "98a8856ba6534bd5212176b22f3acbb3"


def _events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The blocks of a text/event-stream; comments as {"comment": text}."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
        elif fields:
            yield fields
            fields = {}


def _first_data_message(events: Iterator[dict[str, str]], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    for event in events:
        assert event.get("event") != "resync", "the stream fell behind"
        if event.get("event") == "message":
            message: dict[str, Any] = json.loads(event["data"])
            assert event["id"] == message["id"]
            if message["type"] == "data":
                return message
        assert time.monotonic() < deadline, "no data message on the stream in time"
    raise AssertionError("the stream ended")


def test_a_simulated_message_arrives_on_the_live_stream(nubes_factory: Any, tmp_path: Path) -> None:
    nubes = nubes_factory(
        {
            "NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/nubes.db",
            "NUBES_SSE_HEARTBEAT_SECONDS": "1",
        }
    )
    nubes.start("serve")
    base_url = nubes.api_url
    key = nubes.run("apikey", "create", "--scope", "admin").strip()
    [device] = nubes.json_lines(
        "device", "add", "--serial", SERIAL, "--claim-token", CLAIM_TOKEN, "--name", "live-1"
    )
    headers = {"Authorization": f"Bearer {key}"}
    params = {"device_id": device["id"]}
    with (
        httpx.Client(base_url=base_url, timeout=10.0) as client,
        client.stream("GET", "/v1/messages/stream", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        events = _events(response)
        assert next(events) == {"retry": "2000"}  # subscribed: nothing is missed from here
        nubes.run(
            "sim",
            "--serial",
            SERIAL,
            "--claim-token",
            CLAIM_TOKEN,
            "--messages",
            "1",
            "--timeout",
            "5",
            "--poll-interval",
            "0.5",
            "--json",
        )
        live = _first_data_message(events, timeout=30)

    assert live["device_id"] == device["id"]
    assert live["label"] == f"hsn:{SERIAL}"
    assert live["decode_state"] == "decoded"
    assert live["data"]["message"]["sequence"] == 1
    listed = httpx.get(
        f"{base_url}/v1/messages", headers=headers, params={"device_id": device["id"]}
    )
    assert listed.status_code == 200, listed.text
    [stored] = [m for m in listed.json() if m["id"] == live["id"]]
    assert stored == live

    # Reconnecting with the last id replays nothing twice: the next event is a ping.
    resume = {**headers, "Last-Event-ID": live["id"]}
    with (
        httpx.Client(base_url=base_url, timeout=10.0) as client,
        client.stream("GET", "/v1/messages/stream", headers=resume, params=params) as response,
    ):
        events = _events(response)
        assert next(events) == {"retry": "2000"}
        following = next(events)
        assert following == {"comment": "ping"} or json.loads(following["data"])["type"] != "data"
