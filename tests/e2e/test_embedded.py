"""`nubes serve` on embedded defaults, driven by `nubes sim`, read back by the CLI.

This is what a newcomer does after `make run`: add devices, run the
simulator over both ports, look at sessions, logs and decoded messages,
queue downlinks; then restart the server and find everything still there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def sim(nubes: Any, *args: str) -> dict[str, Any]:
    lines = nubes.json_lines("sim", "--timeout", "5", "--poll-interval", "0.5", *args)
    return lines[-1]


def test_serve_sim_and_cli_on_both_ports(nubes_factory: Any, tmp_path: Path) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/nubes.db"})
    nubes.start("serve")
    env = nubes.env
    nubes.run(
        "device",
        "add",
        "--serial",
        "300000001",
        "--claim-token",
        "98a8856ba6534bd5212176b22f3acbb3",
        "--name",
        "clime-1",
    )
    nubes.run("downlink", "shell", "--serial", "300000001", "app config show")

    summary = sim(
        nubes,
        "--serial",
        "300000001",
        "--claim-token",
        "98a8856ba6534bd5212176b22f3acbb3",
        "--messages",
        "3",
        "--rate",
        "20",
    )
    assert summary["sessions"] >= 1
    assert summary["data_acked"] == 3
    assert summary["shell_answers"] == 1
    raw = sim(
        nubes,
        "--raw",
        "--port",
        env["NUBES_FLAP_RAW_PORT"],
        "--serial",
        "300000010",
        "--devices",
        "3",
        "--add",
        "--messages",
        "2",
        "--rate",
        "30",
    )
    assert raw["data_acked"] == 6

    data = nubes.json_lines("messages", "--serial", "300000001", "--type", "data")
    assert len(data) == 3
    assert {"id", "created_at", "type", "direction", "body", "session_id"} <= set(data[0])
    assert data[0]["body"]["message"]["sequence"] == 3
    assert data[0]["created_at"] > data[1]["created_at"] > data[2]["created_at"]
    shell = nubes.json_lines("messages", "--serial", "300000001", "--type", "shell")
    assert [m["direction"] for m in shell] == ["up", "down"]
    assert shell[0]["body"]["results"][0]["command"] == "app config show"
    assert nubes.json_lines("downlink", "list", "--serial", "300000001")[0]["state"] == "delivered"

    sessions = nubes.json_lines("sessions", "--serial", "300000010")
    assert sessions[0]["envelope"] == "raw"
    packets = nubes.json_lines("log", "--session", str(sessions[0]["id"]))
    assert packets[0]["flag_text"] == "[FLxx]"
    assert {p["outcome"] for p in packets} >= {"accepted", "ack"}

    device_log = nubes.json_lines("log", "--serial", "300000010", "--limit", "5")
    assert len(device_log) == 5
    assert device_log[-1]["at"] >= device_log[0]["at"]

    listed = nubes.json_lines("device", "list")
    assert [d["serial"] for d in listed] == [300000001, 300000010, 300000011, 300000012]
    shown = nubes.run("device", "show", "--serial", "300000001")
    assert "claim_token" not in shown
    assert "98a8856b" not in shown


def test_data_survives_a_restart(nubes_factory: Any, tmp_path: Path) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/nubes.db"})
    server = nubes.start("serve")
    assert (
        sim(nubes, "--serial", "400000001", "--add", "--messages", "2", "--rate", "20")[
            "data_acked"
        ]
        == 2
    )
    assert nubes.stop(server) == 0
    nubes.start("serve")
    assert len(nubes.json_lines("messages", "--serial", "400000001", "--type", "data")) == 2
    first = nubes.json_lines("sessions", "--serial", "400000001")
    assert sim(nubes, "--serial", "400000001", "--messages", "1")["data_acked"] == 1
    sessions = nubes.json_lines("sessions", "--serial", "400000001")
    assert len(sessions) == len(first) + 1
    assert sessions[0]["id"] > first[0]["id"], "session ids must stay unique across restarts"
    assert len(nubes.json_lines("messages", "--serial", "400000001", "--type", "data")) == 3
