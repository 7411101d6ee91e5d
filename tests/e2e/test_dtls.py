"""The DTLS envelope of `nubes serve` (embedded defaults), from the outside.

Devices are `nubes sim --dtls` processes (python-mbedtls clients, one
socket each) and OpenSSL's `s_client`; what the cloud made of them is read
back with the CLI: sessions, the communication log, messages, downlinks.
Keys come from `nubes device add --psk` and `nubes device psk`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import require_tool
from nubes import flap
from nubes.sim import messages as m

pytestmark = pytest.mark.e2e

NUBES = str(Path(sys.executable).with_name("nubes"))
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "98a8856ba6534bd5212176b22f3acbb3"
PSK, OLD, NEW = "000102030405060708090a0b0c0d0e0f", "11" * 16, "22" * 32
SUITE = "TLS-PSK-WITH-AES-128-CCM-8"


def serve(nubes_factory: Any, tmp_path: Path) -> Any:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/nubes.db"})
    nubes.start("serve")
    return nubes


def add(nubes: Any, serial: int, psk: str = PSK) -> None:
    nubes.run("device", "add", "--serial", str(serial), "--claim-token", TOKEN, "--psk", psk)
    time.sleep(0.5)  # the gateway's directory refreshes every 0.2 s


def sim_args(serial: int, psk: str, *args: str) -> list[str]:
    return ["sim", "--dtls", "--serial", str(serial), "--psk", psk, "--timeout", "5", *args]


def sim(nubes: Any, serial: int, psk: str = PSK, *args: str) -> dict[str, Any]:
    """A `nubes sim --dtls` run that must succeed; its summary."""
    summary: dict[str, Any] = nubes.json_lines(
        *sim_args(serial, psk, "--poll-interval", "0.5", *args)
    )[-1]
    return summary


def failing_sim(nubes: Any, serial: int, psk: str = PSK) -> dict[str, Any]:
    """A `nubes sim --dtls` run whose handshakes fail: exit code 1 and its summary."""
    done = subprocess.run(
        [NUBES, *sim_args(serial, psk, "--messages", "1", "--duration", "2", "--json")],
        env=nubes.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert summary["handshakes"] == 0
    assert summary["handshake_failures"] >= 1
    assert summary["data_acked"] == 0
    return summary


def dtls_events(nubes: Any, serial: int) -> list[tuple[str, str | None]]:
    rows = nubes.json_lines("log", "--serial", str(serial), "--limit", "1000")
    return [(r["outcome"], r["detail"]) for r in rows if r["outcome"].startswith("dtls_")]


def test_a_device_session_over_dtls_and_what_the_cli_shows(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = serve(nubes_factory, tmp_path)
    add(nubes, 500000001)
    nubes.run("downlink", "shell", "--serial", "500000001", "app config show")

    summary = sim(nubes, 500000001, PSK, "--messages", "3", "--rate", "20")
    assert summary["sessions"] >= 1
    assert summary["data_acked"] == 3
    assert summary["shell_answers"] == 1
    assert summary["handshakes"] >= 1
    assert summary["handshake_failures"] == 0
    assert summary["timeouts"] == 0

    sessions = nubes.json_lines("sessions", "--serial", "500000001")
    assert sessions[0]["envelope"] == "dtls"
    assert sessions[0]["remote_address"] == "127.0.0.1"
    packets = nubes.json_lines("log", "--session", str(sessions[0]["id"]))
    assert {p["envelope"] for p in packets} == {"dtls"}
    # The session's log begins with the handshake that opened it.
    assert [p["outcome"] for p in packets[:2]] == ["dtls_start", "dtls_established"]
    assert next(p["flag_text"] for p in packets if p["flag_text"]) == "[FLxx]"
    assert {p["outcome"] for p in packets} >= {"accepted", "ack"}
    # Uploads (decoder, encoder) are cut into fragments of 300 bytes of data:
    # the datagram adds 2 header bytes and 29 of DTLS (13 header, 8 nonce, 8 tag).
    assert max(p["size"] for p in packets if p["direction"] == "in") == 300 + 2 + 29
    assert (packets[-1]["outcome"], packets[-1]["detail"]) == ("dtls_closed", "peer_closed")

    events = dtls_events(nubes, 500000001)
    assert ("dtls_start", None) in events
    assert ("dtls_established", f"{SUITE} as hsn:500000001") in events

    assert len(nubes.json_lines("messages", "--serial", "500000001", "--type", "data")) == 3
    shell = nubes.json_lines("messages", "--serial", "500000001", "--type", "shell")
    assert [message["direction"] for message in shell] == ["up", "down"]
    assert nubes.json_lines("downlink", "list", "--serial", "500000001")[0]["state"] == "delivered"


def test_the_handshake_is_in_the_log_of_the_session_it_opened(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = serve(nubes_factory, tmp_path)
    add(nubes, 500000002)
    assert sim(nubes, 500000002, PSK, "--messages", "1")["data_acked"] == 1
    (session,) = nubes.json_lines("sessions", "--serial", "500000002")
    outcomes = [p["outcome"] for p in nubes.json_lines("log", "--session", str(session["id"]))]
    assert outcomes[:2] == ["dtls_start", "dtls_established"]


def test_a_wrong_psk_and_an_unknown_identity_fail_the_handshake_and_nothing_else(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = serve(nubes_factory, tmp_path)
    server = nubes.processes[0][0]
    add(nubes, 500000003)

    failing_sim(nubes, 500000003, "33" * 16)
    failed = [
        detail for outcome, detail in dtls_events(nubes, 500000003) if outcome == "dtls_failed"
    ]
    assert failed
    assert all(detail.startswith("bad_key") for detail in failed)
    assert not nubes.json_lines("sessions", "--serial", "500000003")

    failing_sim(nubes, 599999999)  # no such device
    assert server.poll() is None
    assert sim(nubes, 500000003, PSK, "--messages", "1")["data_acked"] == 1
    assert "Traceback" not in nubes.logs()


def test_key_rotation_through_the_cli_keeps_the_old_psk_during_its_grace(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = serve(nubes_factory, tmp_path)
    add(nubes, 500000004, OLD)
    nubes.run("device", "psk", "--serial", "500000004", "--psk", NEW)
    time.sleep(0.5)

    assert sim(nubes, 500000004, OLD, "--messages", "1")["data_acked"] == 1
    assert sim(nubes, 500000004, NEW, "--messages", "1")["data_acked"] == 1
    established = [d for o, d in dtls_events(nubes, 500000004) if o == "dtls_established"]
    assert established == [
        f"{SUITE} as hsn:500000004, with the replaced PSK",
        f"{SUITE} as hsn:500000004",
    ]

    # Without a grace window the replaced key is refused at once.
    nubes.run("device", "psk", "--serial", "500000004", "--psk", OLD, "--grace-seconds", "0")
    time.sleep(0.5)
    failing_sim(nubes, 500000004, NEW)
    assert sim(nubes, 500000004, OLD, "--messages", "1")["data_acked"] == 1


def test_a_device_handshakes_again_after_the_server_restarts(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = serve(nubes_factory, tmp_path)
    add(nubes, 500000005)
    args = sim_args(500000005, PSK, "--messages", "6", "--rate", "1", "--json")
    device = subprocess.Popen(
        [NUBES, *args], env=nubes.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while len(nubes.json_lines("messages", "--serial", "500000005", "--type", "data")) < 2:
            assert time.monotonic() < deadline, "the device sent no data"
            time.sleep(0.3)
        assert nubes.stop(nubes.processes[0][0]) == 0
        nubes.start("serve")  # same database, same ports, no associations
        out, err = device.communicate(timeout=60)
    finally:
        if device.poll() is None:
            device.send_signal(signal.SIGTERM)
            device.wait(10)
    assert device.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["data_acked"] == 6
    assert summary["handshakes"] >= 2
    data = nubes.json_lines("messages", "--serial", "500000005", "--type", "data")
    assert len(data) == 6


# -- OpenSSL's DTLS client ---------------------------------------------------------------------


def require_openssl() -> str:
    return require_tool("openssl", "for the DTLS interop test")


class SClient:
    """`openssl s_client` over DTLS 1.2 with a PSK: FLAP packets on stdin, answers on stdout.

    `-quiet` keeps stdout for the records and, with `-ign_eof`, keeps the
    client running between packets; each write to stdin becomes one record.
    """

    def __init__(self, openssl: str, port: int, serial: int, psk: str) -> None:
        command = [
            openssl, "s_client", "-dtls1_2", "-quiet", "-ign_eof",
            "-cipher", "PSK-AES128-CCM8@SECLEVEL=0",
            "-psk_identity", f"hsn:{serial}", "-psk", psk,
            "-connect", f"127.0.0.1:{port}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def exchange(self, packet: flap.Packet, timeout: float = 10.0) -> flap.Packet:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(packet.encode())
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], timeout)
        assert ready, f"no answer to {packet}: {self.stop()}"
        return flap.Packet.decode(os.read(stdout.fileno(), 65_536))

    def stop(self) -> str:
        self.process.kill()
        self.process.wait(10)
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


def test_openssl_s_client_opens_a_session_over_dtls(nubes_factory: Any, tmp_path: Path) -> None:
    openssl = require_openssl()
    nubes = serve(nubes_factory, tmp_path)
    add(nubes, 500000006)
    client = SClient(openssl, int(nubes.env["NUBES_DTLS_PORT"]), 500000006, PSK)
    try:
        # The session start of the spec: c000 3001 1002 c003 ...
        attributes = {0: 0, 1: "HARDWARIO", 2: "CHESTER-M", 7: "v3.0.0"}
        create = flap.Packet(flap.F | flap.L, 0, m.create_session(attributes))
        ack = client.exchange(create)
        assert (ack.flags, ack.seq, ack.data) == (flap.A | flap.P, 1, b"")
        answer = client.exchange(flap.Packet(flap.P, 2))
        assert (answer.flags, answer.seq) == (flap.F | flap.L, 3)
        downlink = m.parse_downlink(answer.data)
        assert downlink.type == flap.MessageType.SET_SESSION
        session_id = downlink.value[0]
    finally:
        client.stop()
    (session,) = nubes.json_lines("sessions", "--serial", "500000006")
    assert session["id"] == session_id
    assert session["envelope"] == "dtls"
    assert "HARDWARIO" in json.dumps(session["attributes"])
    assert ("dtls_established", f"{SUITE} as hsn:500000006") in dtls_events(nubes, 500000006)


# -- the benchmark keeps working ---------------------------------------------------------------


def test_the_dtls_benchmark_runs_and_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "bench/dtls.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in ("a. full PSK handshakes/s", "b. answered FLAP uplinks/s", "c. memory per"):
        assert figure in done.stdout, done.stdout
    assert "errors (failed handshakes): 0" in done.stdout
    assert "(the server's log: 1,100 established, 0 closed, 0 failed)" in done.stdout
